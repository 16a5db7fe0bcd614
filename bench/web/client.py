"""An office session the way a browser keeps one, over one keep-alive ``http.client``
connection: the session cookie, the CSRF token from the page, form posts, redirects followed
by hand (so each request can be timed and counted)."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from dataclasses import dataclass, field

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_COOKIE = "gridvend_session"


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    wire_bytes: int  # status line + headers + body as received

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Office:
    port: int
    gzip: bool = False
    cookie: str = ""
    token: str = ""
    conn: http.client.HTTPConnection = field(init=False)

    def __post_init__(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def close(self) -> None:
        self.conn.close()

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> Answer:
        headers = {"Connection": "keep-alive", **(extra or {})}
        if self.cookie:
            headers["Cookie"] = f"{_COOKIE}={self.cookie}"
        if self.gzip:
            headers["Accept-Encoding"] = "gzip, deflate, br"
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body, headers)
        resp = self.conn.getresponse()
        data = resp.read()
        pairs = resp.getheaders()
        head = len(f"HTTP/1.1 {resp.status} {resp.reason}\r\n") + 2
        head += sum(len(f"{k}: {v}\r\n") for k, v in pairs)
        for k, v in pairs:
            if k.lower() == "set-cookie" and v.startswith(f"{_COOKIE}="):
                self.cookie = v.split(";", 1)[0].split("=", 1)[1]
        answer = Answer(resp.status, pairs, data, head + len(data))
        found = _TOKEN.search(answer.text) if not self.gzip else None
        if found:
            self.token = found.group(1)
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], extra: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, {"csrf_token": self.token, **form}, extra)

    def login(self, username: str, password: str) -> None:
        self.get("/office/login")
        answer = self.post("/office/login", {"username": username, "password": password})
        if answer.status != 302:
            raise RuntimeError(f"sign-in of {username} failed: {answer.status}")
        self.get("/office/sales/sell")  # the CSRF token of the signed-in session
