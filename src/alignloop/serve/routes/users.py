"""Sessions, consent (training and publication, separately) and deletion requests."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alignloop.serve.auth import (
    CSRF_COOKIE,
    TOKEN_COOKIE,
    check_same_origin,
    current_user,
    new_token,
    resolve_user,
)
from alignloop.serve.schemas import ConsentRequest
from alignloop.store.models import User
from alignloop.store.repository import UserRef, request_deletion, set_consent

router = APIRouter(prefix="/api", tags=["users"])
ONE_YEAR = 365 * 24 * 3600


def _describe(user: User) -> dict:
    return {
        "pseudonym": user.pseudonym,
        "consent": {"training": user.consent_training, "publication": user.consent_publication},
        "deletion_requested": user.deletion_requested_at is not None,
    }


@router.post("/session", status_code=201)
async def start_session(request: Request, response: Response):
    """A new pseudonymous user for a browser: token in an HttpOnly cookie, plus a CSRF cookie."""
    services = request.app.state.services
    check_same_origin(request)
    services.limiter.check(request.client.host if request.client else "?")
    token, csrf = new_token(), new_token()
    user = await resolve_user(services, token)
    secure = request.url.scheme == "https"
    response.set_cookie(
        TOKEN_COOKIE, token, max_age=ONE_YEAR, httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(CSRF_COOKIE, csrf, max_age=ONE_YEAR, samesite="strict", secure=secure)
    return {"pseudonym": user.pseudonym, "csrf_token": csrf}


@router.get("/me")
async def me(request: Request, user: UserRef = Depends(current_user)):
    engine = request.app.state.services.engine

    def read() -> dict:
        with Session(engine) as session:
            return _describe(session.get(User, user.id))

    return await run_in_threadpool(read)


@router.put("/me/consent")
async def put_consent(
    body: ConsentRequest, request: Request, user: UserRef = Depends(current_user)
):
    writer = request.app.state.services.writer
    row = await writer.run(lambda s: set_consent(s, user.id, body.training, body.publication))
    return _describe(row)


@router.post("/me/deletion", status_code=202)
async def ask_deletion(request: Request, user: UserRef = Depends(current_user)):
    """Record the request: the user's data leaves every later export and dataset."""
    services = request.app.state.services
    row = await services.writer.run(lambda s: request_deletion(s, user.id))
    services.forget_token_user(user.id)
    return _describe(row)
