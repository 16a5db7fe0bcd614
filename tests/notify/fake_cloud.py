"""Local HTTP servers that play Aliyun SMS, Tencent Cloud SMS and a webhook receiver, verifying
each request's signature the way the provider documents it (written here independently of
``cloud.notify.channels.signing``, so one bug cannot hide in both).

``mode`` picks the answer: ``ok``; ``timeout`` (answer after ``delay_s``, longer than a client's
read timeout); ``5xx``; ``reject_template`` (the template is not approved); ``limit`` (rate
limited); ``no_balance``. Every request is kept in ``requests`` with whether its signature held.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Seen:
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    verified: bool
    answer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class _Server:
    """One provider on a free loopback port, in its own thread."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay_s = 1.0
        self.requests: list[Seen] = []
        self.keep = True
        self.count = 0
        self.verified = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as two writes: without this, Nagle holds the body
                # for the client's delayed ACK (~40 ms a request on a kept-alive connection).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, reply = owner.handle(self, body)
                if owner.mode == "timeout":
                    time.sleep(owner.delay_s)
                data = json.dumps(reply, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.count += 1
            self.verified += seen.verified
            if self.keep:
                self.requests.append(seen)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _hex_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rfc3986(value: str) -> str:
    return quote(value, safe="-_.~")


class FakeAliyun(_Server):
    """Aliyun's V3 check: Authorization parsed, the canonical request rebuilt from what arrived
    (query re-encoded and sorted, the signed headers' values, the body's hash), HMAC-SHA256
    with the AccessKey secret; x-acs-date within 15 minutes; a nonce used once."""

    def __init__(self, keys: dict[str, str], templates: dict[str, list[str]]) -> None:
        super().__init__()
        self.keys = keys
        self.templates = templates
        self._nonces: set[str] = set()
        self.biz = 0

    def verify(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[str | None, str]:
        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})",
            auth,
        )
        if not m:
            return "IncompleteSignature", ""
        key_id, signed, signature = m.groups()
        if key_id not in self.keys:
            return "InvalidAccessKeyId.NotFound", ""
        names = signed.split(";")
        for required in ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                         "x-acs-signature-nonce", "x-acs-content-sha256"):  # fmt: skip
            if required not in names:
                return "IncompleteSignature", ""
        if request.headers["x-acs-content-sha256"] != _hex_sha256(body):
            return "ContentSHA256NotMatched", ""
        try:
            date = calendar.timegm(
                time.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
            )
        except ValueError:
            return "InvalidTimeStamp.Format", ""
        if abs(date - time.time()) > 900:
            return "InvalidTimeStamp.Expired", ""
        nonce = request.headers["x-acs-signature-nonce"]
        if nonce in self._nonces:
            return "SignatureNonceUsed", ""
        split = urlsplit(request.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(pairs))
        headers = "".join(f"{n}:{request.headers[n].strip()}\n" for n in names)
        canonical = "\n".join(
            ("POST", split.path or "/", query, headers, signed, _hex_sha256(body))
        )
        string_to_sign = "ACS3-HMAC-SHA256\n" + _hex_sha256(canonical.encode())
        expected = hmac.new(
            self.keys[key_id].encode(), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "SignatureDoesNotMatch", ""
        self._nonces.add(nonce)
        return None, key_id

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        error, _ = self.verify(request, body)
        query = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
        seen = Seen(dict(request.headers), query, body, error is None)
        self.record(seen)
        if error is not None:
            seen.answer = error
            return 400 if error != "InvalidAccessKeyId.NotFound" else 404, {
                "Code": error,
                "Message": "Specified signature is not matched with our calculation.",
                "RequestId": "fake",
            }
        if self.mode == "5xx":
            seen.answer = "5xx"
            return 503, {"Code": "ServiceUnavailable", "Message": "try later"}
        code = None
        template = query.get("TemplateCode", "")
        if self.mode == "reject_template" or template not in self.templates:
            code = "isv.SMS_TEMPLATE_ILLEGAL"
        elif self.mode == "limit":
            code = "isv.BUSINESS_LIMIT_CONTROL"
        elif self.mode == "no_balance":
            code = "isv.AMOUNT_NOT_ENOUGH"
        else:
            params = json.loads(query.get("TemplateParam") or "{}")
            if any(p not in params for p in self.templates[template]):
                code = "isv.TEMPLATE_MISSING_PARAMETERS"
        if code is not None:
            seen.answer = code
            return 200, {"Code": code, "Message": code, "RequestId": "fake"}
        self.biz += 1
        seen.answer = "OK"
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"biz-{self.biz}", "RequestId": "r"}


class FakeTencent(_Server):
    """Tencent's TC3 check: the credential scope's date is the timestamp's UTC date, the
    timestamp within 5 minutes (else AuthFailure.SignatureExpire), the canonical request rebuilt
    from the signed headers (names and values lowercased) and the payload's hash, the key
    derived date → service → tc3_request."""

    def __init__(self, keys: dict[str, str], templates: dict[str, int]) -> None:
        super().__init__()
        self.keys = keys
        self.templates = templates  # template id -> number of parameters
        self.serial = 0

    def verify(self, request: BaseHTTPRequestHandler, body: bytes) -> str | None:
        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d\d-\d\d)/(\w+)/tc3_request, "
            r"SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
            auth,
        )
        if not m:
            return "AuthFailure.InvalidAuthorization"
        secret_id, date, service, signed, signature = m.groups()
        if secret_id not in self.keys:
            return "AuthFailure.SecretIdNotFound"
        ts = request.headers.get("X-TC-Timestamp", "")
        if not ts.isdigit() or abs(int(ts) - time.time()) > 300:
            return "AuthFailure.SignatureExpire"
        if time.strftime("%Y-%m-%d", time.gmtime(int(ts))) != date:
            return "AuthFailure.SignatureFailure"
        names = signed.split(";")
        if "content-type" not in names or "host" not in names:
            return "AuthFailure.SignatureFailure"
        headers = "".join(f"{n}:{request.headers[n].strip().lower()}\n" for n in names)
        canonical = f"POST\n/\n\n{headers}\n{signed}\n{_hex_sha256(body)}"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{date}/{service}/tc3_request\n"
        to_sign += _hex_sha256(canonical.encode())

        def mac(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = mac(mac(mac(("TC3" + self.keys[secret_id]).encode(), date), service), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "AuthFailure.SignatureFailure"
        return None

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        error = self.verify(request, body)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        seen = Seen(dict(request.headers), {}, body, error is None, extra=payload)
        self.record(seen)
        if self.mode == "5xx":
            seen.answer = "5xx"
            return 502, {"message": "bad gateway"}
        if error is not None:
            seen.answer = error
            return 200, {"Response": {"Error": {"Code": error, "Message": error}, "RequestId": "x"}}
        code = "Ok"
        template = payload.get("TemplateId")
        if self.mode == "reject_template" or template not in self.templates:
            code = "FailedOperation.TemplateIncorrectOrUnapproved"
        elif self.mode == "limit":
            code = "LimitExceeded.PhoneNumberThirtySecondLimit"
        elif self.mode == "no_balance":
            code = "FailedOperation.InsufficientBalanceInSmsPackage"
        elif len(payload.get("TemplateParamSet", [])) != self.templates[template]:
            code = "InvalidParameterValue.TemplateParameterFormatError"
        seen.answer = code
        self.serial += 1
        number = (payload.get("PhoneNumberSet") or [""])[0]
        status = {"SerialNo": f"serial-{self.serial}" if code == "Ok" else "", "Code": code,
                  "PhoneNumber": number, "Fee": 1 if code == "Ok" else 0,
                  "SessionContext": payload.get("SessionContext", ""), "Message": code}  # fmt: skip
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": "x"}}


class FakeWebhook(_Server):
    """An integrator's receiver: checks ``v1=HMAC-SHA256(secret, ts + "." + body)`` and the
    timestamp's age, answers 2xx with its own id, or ``status`` when set."""

    def __init__(self, secret: str, status: int | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.status = status
        self.on_request: Callable[[Seen], None] | None = None

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        ts = request.headers.get("X-Gridvend-Timestamp", "")
        sig = request.headers.get("X-Gridvend-Signature", "")
        expected = (
            "v1="
            + hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        fresh = ts.isdigit() and abs(int(ts) - time.time()) <= 300
        ok = fresh and hmac.compare_digest(expected, sig)
        seen = Seen(dict(request.headers), {}, body, ok, extra=json.loads(body or b"{}"))
        self.record(seen)
        if not ok:
            return 401, {"error": "bad signature"}
        if self.mode == "5xx":
            return 500, {"error": "oops"}
        if self.status is not None:
            return self.status, {"error": "refused"}
        return 200, {"id": f"hook-{len(self.requests)}"}


def main() -> None:
    """``python -m tests.notify.fake_cloud aliyun KEY_ID SECRET CODE PARAM...``: serve a fake
    Aliyun in this process until stdin closes; prints its URL as the first line (the notify
    benchmark runs it apart from the notifier, as the real provider is)."""
    import sys  # noqa: PLC0415 (only when run as a program)

    _, kind, key_id, secret, code, *params = sys.argv
    if kind != "aliyun":
        raise SystemExit("only aliyun is served this way")
    with FakeAliyun({key_id: secret}, {code: params}) as server:
        server.keep = False  # the benchmark sends thousands: keep no request log
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
