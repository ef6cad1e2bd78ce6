"""Read a user's own conversations back (the UI lists and reopens them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool

from alignloop.serve.auth import current_user
from alignloop.store.models import Comparison, Conversation, Message, SafetyLabel
from alignloop.store.repository import UserRef, owned_conversation, pending_regeneration
from alignloop.store.stats import first_human_messages

router = APIRouter(prefix="/api/conversations", tags=["conversations"])
TITLE_CHARS = 60


def _message(m: Message, user_id: int, labels: dict[int, str]) -> dict:
    return {
        "id": m.id,
        "position": m.position,
        "sender": m.sender,
        "text": m.text,
        "created_at": m.created_at.isoformat(),
        "safety_gated": m.safety_gated,
        "finish_reason": (m.generation or {}).get("finish_reason"),
        "safety_label": labels.get(m.id),
        "feedback": [
            {"kind": f.kind, "reason": f.reason, "text": f.text}
            for f in m.feedback
            if f.user_id == user_id
        ],
    }


def _titles(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    """Each conversation's first human message (or its prompt), cut short."""
    titles = first_human_messages(session, conversation_ids, TITLE_CHARS)
    prompts = session.execute(
        select(Comparison.conversation_id, Comparison.context).where(
            Comparison.conversation_id.in_(conversation_ids), Comparison.source == "compare"
        )
    )
    for conversation_id, context in prompts:
        titles.setdefault(conversation_id, context[-1]["content"][:TITLE_CHARS])
    return titles


@router.get("")
async def list_conversations(
    request: Request,
    user: UserRef = Depends(current_user),
    limit: int = Query(50, ge=1, le=500),
    mode: str | None = Query(None, pattern="^(chat|compare|redteam)$"),
):
    engine = request.app.state.services.engine

    def read() -> list[dict]:
        with Session(engine) as session:
            query = select(Conversation).where(Conversation.user_id == user.id)
            if mode:
                query = query.where(Conversation.mode == mode)
            rows = list(session.scalars(query.order_by(Conversation.id.desc()).limit(limit)))
            titles = _titles(session, [c.id for c in rows])
            return [
                {
                    "id": c.id,
                    "mode": c.mode,
                    "title": titles.get(c.id, ""),
                    "created_at": c.created_at.isoformat(),
                }
                for c in rows
            ]

    return {"conversations": await run_in_threadpool(read)}


def _user_labels(session: Session, message_ids: list[int]) -> dict[int, str]:
    rows = session.execute(
        select(SafetyLabel.message_id, SafetyLabel.label)
        .where(SafetyLabel.message_id.in_(message_ids), SafetyLabel.labeler_kind == "user")
        .order_by(SafetyLabel.id)
    )
    return dict(rows.tuples().all())  # the latest label per message wins


def _pending_choice(session: Session, conversation_id: int) -> dict | None:
    comparison = pending_regeneration(session, conversation_id)
    if comparison is None:
        return None
    return {
        "comparison_id": comparison.id,
        "responses": [
            {"index": i, "message_id": r["message_id"], "text": r["text"]}
            for i, r in enumerate(comparison.responses)
        ],
    }


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: int, request: Request, user: UserRef = Depends(current_user)
):
    """The conversation's main line (replies the user replaced by regenerating are left out),
    and the regenerated pair still awaiting the user's pick, if any."""
    engine = request.app.state.services.engine

    def read() -> dict:
        with Session(engine) as session:
            owned_conversation(session, user.id, conversation_id)
            conversation = session.scalar(
                select(Conversation)
                .where(Conversation.id == conversation_id)
                .options(selectinload(Conversation.messages).selectinload(Message.feedback))
            )
            messages = [m for m in conversation.messages if m.superseded_by_id is None]
            pending = _pending_choice(session, conversation_id)
            if pending:
                waiting = {r["message_id"] for r in pending["responses"][1:]}
                messages = [m for m in messages if m.id not in waiting]
            labels = _user_labels(session, [m.id for m in messages])
            return {
                "id": conversation.id,
                "mode": conversation.mode,
                "messages": [_message(m, user.id, labels) for m in messages],
                "pending_choice": pending,
            }

    return await run_in_threadpool(read)
