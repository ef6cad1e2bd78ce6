"""Read a user's own conversations back (the UI lists and reopens them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool

from alignloop.serve.auth import current_user
from alignloop.store.models import Conversation, Message
from alignloop.store.repository import UserRef, owned_conversation

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


def _message(m: Message, user_id: int) -> dict:
    return {
        "id": m.id,
        "position": m.position,
        "sender": m.sender,
        "text": m.text,
        "created_at": m.created_at.isoformat(),
        "safety_gated": m.safety_gated,
        "feedback": [
            {"kind": f.kind, "reason": f.reason, "text": f.text}
            for f in m.feedback
            if f.user_id == user_id
        ],
    }


@router.get("")
async def list_conversations(
    request: Request,
    user: UserRef = Depends(current_user),
    limit: int = Query(50, ge=1, le=500),
):
    engine = request.app.state.services.engine

    def read() -> list[dict]:
        with Session(engine) as session:
            rows = session.scalars(
                select(Conversation)
                .where(Conversation.user_id == user.id)
                .order_by(Conversation.id.desc())
                .limit(limit)
            )
            return [
                {"id": c.id, "mode": c.mode, "created_at": c.created_at.isoformat()} for c in rows
            ]

    return {"conversations": await run_in_threadpool(read)}


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: int, request: Request, user: UserRef = Depends(current_user)
):
    engine = request.app.state.services.engine

    def read() -> dict:
        with Session(engine) as session:
            owned_conversation(session, user.id, conversation_id)
            conversation = session.scalar(
                select(Conversation)
                .where(Conversation.id == conversation_id)
                .options(selectinload(Conversation.messages).selectinload(Message.feedback))
            )
            return {
                "id": conversation.id,
                "mode": conversation.mode,
                "messages": [_message(m, user.id) for m in conversation.messages],
            }

    return await run_in_threadpool(read)
