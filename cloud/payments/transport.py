"""Outbound HTTP for the providers, injectable (httpx's idea of a transport): production uses
``RequestsTransport``; tests pass a real fake that plays the provider and signs its answers
with a locally generated key. No ``mock.patch`` anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests

from cloud.payments.errors import ProviderError


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str  # absolute
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


class Transport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


class RequestsTransport:
    """The real thing: ``requests`` with a timeout; a network failure is ``ProviderError``."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def send(self, request: HttpRequest) -> HttpResponse:

        try:
            answer = requests.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body or None,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise ProviderError(f"{request.method} {request.url} failed: {exc}") from exc
        return HttpResponse(
            answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.content
        )


class NoTransport:
    """For a provider that must not call out (the demo, most tests): any call is an error."""

    def send(self, request: HttpRequest) -> HttpResponse:
        raise ProviderError(f"no outbound transport configured for {request.url}")
