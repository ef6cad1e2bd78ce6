"""Map every failure to a clear JSON error (OpenAI's shape, so its clients show the message)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from alignloop.errors import AlignloopError, RateLimited

log = logging.getLogger("alignloop.serve")


def error_response(status: int, message: str, code: str, param: str | None = None, headers=None):
    body = {"error": {"message": message, "type": code, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _validation_message(error: dict) -> tuple[int, str, str]:
    if error["type"] == "json_invalid":
        ctx = error.get("ctx", {}).get("error", "")
        return 400, f"request body is not valid JSON: {ctx}", "body"
    field = _field_path(error["loc"])
    if error["type"] == "missing":
        return 422, f"field '{field}' is required", field
    if error["type"] == "extra_forbidden":
        return 422, f"field '{field}' is not accepted here", field
    return 422, f"field '{field}': {error['msg']}", field


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AlignloopError)
    async def _domain(_request: Request, exc: AlignloopError):
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": f"{max(1, round(exc.retry_after))}"}
        return error_response(exc.status, exc.message, exc.code, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        errors = exc.errors()
        status, message, field = _validation_message(errors[0])
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return error_response(status, message, "invalid_request", field)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), "http_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the request was not applied", "server_error")
