"""Regenerate a bot reply in place; the user's pick between old and new is a preference."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from alignloop.serve.auth import current_user
from alignloop.serve.chat import ChatService, sampling_params
from alignloop.serve.schemas import RegenerateRequest
from alignloop.store.repository import UserRef

router = APIRouter(prefix="/api/messages", tags=["chat"])


@router.post("/{message_id}/regenerate", status_code=201)
async def regenerate(
    message_id: int,
    request: Request,
    body: RegenerateRequest | None = None,
    user: UserRef = Depends(current_user),
):
    """A second reply to the context of the conversation's latest bot message.

    Both replies are returned; vote with POST /api/compare/{comparison_id}/vote (choice 0 keeps
    the old reply, 1 the new one). The conversation takes no new turn until then.
    """
    services = request.app.state.services
    params = sampling_params(services.settings, body or RegenerateRequest())
    regen, result = await ChatService(services).regenerate(user.id, message_id, params)
    return {
        "comparison_id": regen.comparison_id,
        "conversation_id": regen.conversation_id,
        "finish_reason": result.finish_reason,
        "safety_gated": result.safety_gated,
        "responses": [
            {
                "index": 0,
                "message_id": regen.old_message_id,
                "role": "old",
                "text": regen.old_text,
            },
            {"index": 1, "message_id": regen.new_message_id, "role": "new", "text": result.reply},
        ],
    }
