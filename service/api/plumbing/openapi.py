"""The OpenAPI document, made to tell the truth about errors.

FastAPI documents request-validation failures with its own `HTTPValidationError` (`detail` a list), and errors
of routes that answer images or event streams under their success media type. convlab answers every error with
one JSON model (`ErrorResponse`: `detail`, and `errors` on a 422), so this rewrites each operation's 4xx
answers: every status an operation can send, described once, as `application/json` `ErrorResponse` (on the Open
Inference Protocol's /v2 paths, its own `OipError`: `error`, as the handlers answer there).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from service.api.plumbing.handlers import speaks_oip
from service.api.plumbing.routes import api_routes
from service.api.plumbing.security import RequireScope
from service.api.wire.errors import ErrorResponse
from service.api.wire.oip import OipError

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
OIP_ERROR_REF = {"$ref": "#/components/schemas/OipError"}
DESCRIPTIONS = {
    400: "The body is not valid JSON (or not a readable form).",
    401: "No API token, or an unknown or revoked one (`WWW-Authenticate: Bearer`).",
    403: "The token lacks the scope this operation needs, or the job belongs to another token.",
    404: "Nothing has this id or name.",
    409: "The resource is not in a state that allows this.",
    413: "The request body is over its size limit (max_body_bytes; predict: predict_max_bytes).",
    415: "The Content-Type is not one this operation reads.",
    422: "A value is missing, of the wrong type, out of range or above a configured limit; `errors` lists each.",
    429: "Too many requests, active jobs or failed authentications; `Retry-After` says when to try again.",
}


def error_statuses(route: APIRoute) -> set[int]:
    """The 4xx statuses `route` can answer, from what it reads and how it is protected."""
    statuses = {int(code) for code in route.responses if str(code).startswith("4")}
    path_params, other_params, protected = False, False, False
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        path_params = path_params or bool(dependant.path_params)
        other_params = other_params or bool(dependant.query_params or dependant.header_params)
        protected = protected or isinstance(dependant.call, RequireScope)
        pending.extend(dependant.dependencies)
    if path_params:
        statuses.add(404)
    if path_params or other_params or route.body_field is not None:
        statuses.add(422)
    if route.body_field is not None:
        statuses |= {400, 413}
    if protected:
        statuses |= {401, 403, 429}  # 429: the failed-authentication lockout applies to every protected route
    return statuses


def convlab_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with convlab's one error model (built once, then cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    defs = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(defs.pop("$defs", {}))
    schemas["ErrorResponse"] = defs
    schemas["OipError"] = OipError.model_json_schema()
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        error_ref = OIP_ERROR_REF if speaks_oip(route.path_format) else ERROR_REF
        for method in (route.methods or set()) - {"HEAD"}:
            responses = document["paths"][route.path_format][method.lower()]["responses"]
            for status in sorted(error_statuses(route)):
                described = responses.get(str(status), {}).get("description")
                responses[str(status)] = {
                    "description": described or DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": error_ref}},
                }
    app.openapi_schema = document
    return document
