"""The OpenAPI 3.1 document of ``/api/v1``, built from the ``@endpoint`` declarations, so an
endpoint cannot exist without being described (``GET /api/v1/openapi.json``, no token needed)."""

from __future__ import annotations

import re
from typing import Any

from cloud.web.api import ENDPOINTS, PREFIX, Ctx, endpoint
from cloud.web.api.schemas import COMPONENTS, ref

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")

ERRORS = {
    "400": "malformed request (not JSON, not an object)",
    "401": "missing, unknown, revoked or expired token",
    "403": "the token's role lacks the permission",
    "404": "no such record",
    "409": "conflicts with the current state (or an idempotency key reused)",
    "422": "a field's value is refused; error.field names it",
}


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/meters/<meter_id>`` → ``/meters/{meter_id}``."""
    return PREFIX + _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_params(rule: str) -> list[dict[str, Any]]:
    out = []
    for conv, name in _CONVERTER.findall(rule):
        schema = {"type": "integer"} if conv == "int" else {"type": "string"}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": _path_params(ep.rule)
            + [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required,
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in ep.params
            ],
            "responses": {
                str(ep.status): {
                    "description": "success",
                    "content": {"application/json": {"schema": ep.response or {}}},
                },
                **{
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": ref("Error")}},
                    }
                    for code, text in ERRORS.items()
                },
            },
        }
        if ep.permission is None:
            op["security"] = []
        else:
            op["x-permission"] = ep.permission
        if ep.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ep.body}},
            }
        paths.setdefault(openapi_path(ep.rule), {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridvend cloud API",
            "version": "1",
            "description": "Remote prepaid electricity: meters, vending, accounts, commands, "
            "readings, alarms, reports. Money in integer micro-yuan, energy in Wh, times in UTC "
            'epoch seconds. Errors: {"error": {"code", "message", "field"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": COMPONENTS,
        },
    }


@endpoint("/openapi.json", "GET", None, "This document", tag="meta")
def openapi_json(ctx: Ctx) -> Any:
    return document()
