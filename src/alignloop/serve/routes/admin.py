"""The operator's dashboard API: totals, activity over time, plots, and a conversation browser.

Every route needs the admin token (bearer header, or the cookie POST /api/admin/session sets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alignloop.charts import bar_chart, line_chart
from alignloop.errors import NotFound
from alignloop.serve.auth import (
    ADMIN_COOKIE,
    check_admin_token,
    check_same_origin,
    require_admin,
)
from alignloop.serve.schemas import AdminLogin
from alignloop.store import stats
from alignloop.store.vocab import DISLIKE_REASONS, normalize_reason

router = APIRouter(prefix="/api/admin", tags=["admin"])
admin_only = [Depends(require_admin)]
Days = Query(30, ge=1, le=366, description="how many days back, today included")
SVG_HEADERS = {"Cache-Control": "no-store"}


async def _read(request: Request, fn: Callable[[Session], Any]) -> Any:
    engine = request.app.state.services.engine

    def run() -> Any:
        with Session(engine) as session:
            return fn(session)

    return await run_in_threadpool(run)


@router.post("/session", status_code=204)
async def login(body: AdminLogin, request: Request, response: Response):
    """Check the admin token and keep it in an HttpOnly, same-site cookie for the pages."""
    services = request.app.state.services
    check_same_origin(request)
    services.limiter.check("admin:" + (request.client.host if request.client else "?"))
    check_admin_token(services, body.token)
    response.set_cookie(
        ADMIN_COOKIE,
        body.token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )


@router.delete("/session", status_code=204)
async def logout(response: Response):
    response.delete_cookie(ADMIN_COOKIE)


@router.get("/summary", dependencies=admin_only)
async def summary(request: Request, days: int = Days):
    def read(session: Session) -> dict:
        return {
            "totals": stats.totals(session),
            "activity": stats.activity_by_day(session, days),
            "dislike_reasons": stats.dislikes_by_reason(session),
            "troll_scores": stats.top_troll_scores(session),
            "model_versions": stats.latest_model_versions(session),
        }

    return await _read(request, read)


@router.get("/plots/activity.svg", dependencies=admin_only)
async def activity_plot(
    request: Request,
    days: int = Days,
    kind: Literal["messages", "feedback", "reasons", "safety"] = Query("messages"),
):
    """Counts per day as a line chart: messages, feedback (likes, dislikes, votes), dislikes
    by reason, or safety (canned replies, red-team labels)."""
    groups = {
        "messages": ("conversations", "human messages", "bot messages"),
        "feedback": ("likes", "dislikes", "votes"),
        "safety": ("canned safety replies", "red-team labels"),
    }
    if kind == "reasons":
        activity = await _read(request, lambda s: stats.dislike_reasons_by_day(s, days))
        series = activity["series"]
        title = f"Dislikes by reason per day, last {days} days"
    else:
        activity = await _read(request, lambda s: stats.activity_by_day(s, days))
        series = {name: activity["series"][name] for name in groups[kind]}
        title = f"{kind.capitalize()} per day, last {days} days"
    svg = line_chart(activity["days"], series, title)
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/plots/reasons.svg", dependencies=admin_only)
async def reasons_plot(request: Request):
    counts = await _read(request, stats.dislikes_by_reason)
    svg = bar_chart(counts, "Dislikes by reason")
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/conversations", dependencies=admin_only)
async def browse(
    request: Request,
    feedback: Literal["like", "dislike", "none"] | None = Query(None),
    reason: str | None = Query(None, description="a dislike reason: " + ", ".join(DISLIKE_REASONS)),
    user: str | None = Query(None, max_length=32, description="a user's pseudonym"),
    mode: Literal["chat", "compare", "redteam"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
):
    if reason:
        reason = normalize_reason(reason)
    selected = stats.ConversationFilter(feedback, reason, user or None, mode, limit, offset)
    return await _read(request, lambda s: stats.browse_conversations(s, selected))


@router.get("/conversations/{conversation_id}", dependencies=admin_only)
async def conversation(conversation_id: int, request: Request):
    detail = await _read(request, lambda s: stats.conversation_detail(s, conversation_id))
    if detail is None:
        raise NotFound(f"no conversation {conversation_id}", "conversation_id")
    return detail


def _loop(request: Request):
    scheduler = request.app.state.services.loop
    if scheduler is None:
        raise NotFound("no loop here: start the server with loop_config (a loop YAML file)")
    return scheduler


@router.get("/loop", dependencies=admin_only)
async def loop_status(request: Request):
    """The background round (running or last) and every round in the store."""
    from alignloop.store.rounds import rounds

    services = request.app.state.services

    def read(session: Session) -> list[dict]:
        return [_round_row(r) for r in rounds(session)]

    status = services.loop.status() if services.loop else {"running": False, "last": None}
    return {"configured": services.loop is not None, **status, "rounds": await _read(request, read)}


@router.post("/loop/rounds", status_code=202, dependencies=admin_only)
async def start_round(request: Request):
    """Start a round in the background (409 while one runs); chat goes on meanwhile."""
    check_same_origin(request)
    started = _loop(request).start_round()
    return {"pid": started.pid, "log": started.log}


def _round_row(row) -> dict[str, Any]:
    decision = row.decision or {}
    return {
        "arm": row.arm,
        "number": row.number,
        "status": row.status,
        "promoted": row.promoted,
        "candidate": row.candidate_version.name if row.candidate_version else None,
        "deployed": row.deployed_version.name if row.deployed_version else None,
        "win_rate": decision.get("win_rate"),
        "win_rate_low": decision.get("win_rate_low"),
        "reasons": decision.get("reasons", []),
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }
