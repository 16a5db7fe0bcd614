"""The OpenAPI 3.1 document of ``/api/v1``, built from the ``@endpoint`` declarations, so an
endpoint cannot exist without being described (``GET /api/v1/openapi.json``, no token needed).

The request schemas in it are the ones the server enforces (``cloud.web.api.validate``); every
status an operation can answer is listed, with the error shape; success responses carry OpenAPI
links to the operations that take the new record's id."""

from __future__ import annotations

import re
from typing import Any

from cloud.web.api import ENDPOINTS, PREFIX, Ctx, Endpoint, endpoint
from cloud.web.api.schemas import COMPONENTS, ref

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")

ERRORS = {
    "400": "malformed request (not JSON, not an object, too large)",
    "401": "missing, unknown, revoked or expired token",
    "403": "the token's role lacks the permission",
    "404": "no such record (the path's, or one the body names; error.field says which)",
    "409": "refused by the current state or a rule the document cannot state (a site's limit, "
    "a meter's cap, thresholds out of order, an idempotency key reused); error.field names "
    "the field",
    "422": "a value outside what this document allows (type, range, length, pattern, unknown "
    "field); error.field names it",
}


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/meters/<meter_id>`` → ``/meters/{meter_id}``."""
    return PREFIX + _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule)


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    out = []
    for p in ep.path_params() + ep.other_params():
        item: dict[str, Any] = {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "schema": p.schema,
        }
        if p.description:
            item["description"] = p.description
        if p.example is not None:
            item["example"] = p.example
        out.append(item)
    return out


def _json(schema: dict[str, Any] | None) -> dict[str, Any]:
    return {"application/json": {"schema": schema or {}}}


def _responses(ep: Endpoint) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success", "content": _json(ep.response)}
    if ep.links:
        success["links"] = {
            name: {"operationId": operation, "parameters": parameters}
            for name, (operation, parameters) in ep.links.items()
        }
    out: dict[str, Any] = {str(ep.status): success}
    for status, (text, schema) in ep.also.items():
        out[str(status)] = {"description": text, "content": _json(schema or ep.response)}
    if ep.permission is None:
        return out
    for code, text in ERRORS.items():
        out[code] = {"description": text, "content": _json(ref("Error"))}
    return out


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": _parameters(ep),
            "responses": _responses(ep),
        }
        if ep.permission is None:
            op["security"] = []
        else:
            op["x-permission"] = ep.permission
        if ep.body is not None:
            op["requestBody"] = {"required": ep.body_required, "content": _json(ep.body)}
        paths.setdefault(openapi_path(ep.rule), {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridvend cloud API",
            "version": "1",
            "description": "Remote prepaid electricity: meters, vending, accounts, commands, "
            "readings, alarms, reports. Money in integer micro-yuan, energy in Wh, times in UTC "
            'epoch seconds. Errors: {"error": {"code", "message", "field"}}: 422 for a value '
            "outside this document, 409 for a rule or state that refuses it.",
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
