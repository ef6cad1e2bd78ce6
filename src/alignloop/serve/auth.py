"""Who is calling: a bearer token (scripts, OpenAI clients) or the UI's cookie.

Any bearer token names a pseudonymous user, created on first use; a user resets by using a new
token. Cookie-authenticated writes must echo the CSRF cookie in a header (double submit).
"""

from __future__ import annotations

import secrets

from fastapi import Request

from alignloop.errors import Forbidden, NotFound, Unauthorized
from alignloop.serve.state import Services
from alignloop.store.repository import UserRef, user_for_token

TOKEN_COOKIE = "alignloop_token"
ADMIN_COOKIE = "alignloop_admin"
CSRF_COOKIE = "alignloop_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def request_token(request: Request) -> tuple[str, bool]:
    """(token, came_from_cookie)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not 8 <= len(token) <= 256:
            raise Unauthorized(
                "Authorization must be 'Bearer <token>' with a token of 8 to 256 characters",
                "authorization",
            )
        return token, False
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise Unauthorized(
            "no credentials: send 'Authorization: Bearer <token>' (any token you keep) "
            "or start a browser session with POST /api/session",
            "authorization",
        )
    return token, True


def check_csrf(request: Request) -> None:
    sent, expected = request.headers.get(CSRF_HEADER), request.cookies.get(CSRF_COOKIE)
    if not expected or not sent or not secrets.compare_digest(sent, expected):
        raise Forbidden(
            "cookie-authenticated writes need the X-CSRF-Token header set to the "
            "alignloop_csrf cookie",
            "x-csrf-token",
        )


async def resolve_user(services: Services, token: str) -> UserRef:
    cached = services.users.get(token)
    if cached is not None:
        return cached
    user = await services.writer.run(lambda s: user_for_token(s, token))
    services.remember_user(token, user)
    return user


async def current_user(request: Request) -> UserRef:
    """The caller; for writes also CSRF-checked (cookies), not deleted, and rate-limited."""
    services: Services = request.app.state.services
    token, from_cookie = request_token(request)
    writing = request.method not in SAFE_METHODS
    if writing and from_cookie:
        check_csrf(request)
    user = await resolve_user(services, token)
    if writing:
        if user.deletion_requested:
            raise Forbidden(
                "this user asked for their data to be deleted; start a new session to go on",
                "authorization",
            )
        services.limiter.check(user.id)
    return user


def check_admin_token(services: Services, token: str | None) -> None:
    expected = services.settings.admin_token
    if not expected:
        raise NotFound(
            "the admin dashboard is off: set admin_token in the server's config file", "token"
        )
    if not token or not secrets.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("wrong admin token", "token")


async def require_admin(request: Request) -> None:
    """The operator: the admin token as a bearer token, or the cookie the admin login set."""
    services: Services = request.app.state.services
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else request.cookies.get(ADMIN_COOKIE)
    check_admin_token(services, token)


def check_same_origin(request: Request) -> None:
    """Refuse a browser request sent from another site (its Origin header names that site)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = origin.split("://", 1)[-1]
        if host != request.headers.get("host"):
            raise Forbidden(f"requests from {origin} are not accepted here", "origin")
