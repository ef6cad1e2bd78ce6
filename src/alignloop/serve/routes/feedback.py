"""Feedback on bot messages (like / dislike with a reason / free text) and safety labels."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from alignloop.serve.auth import current_user
from alignloop.serve.schemas import FeedbackRequest, FeedbackResponse, SafetyLabelRequest
from alignloop.store.repository import UserRef, add_feedback, add_safety_label, owned_message
from alignloop.store.vocab import normalize_reason

router = APIRouter(prefix="/api", tags=["feedback"])


@router.post("/feedback", status_code=201, response_model=FeedbackResponse)
async def post_feedback(
    body: FeedbackRequest, request: Request, user: UserRef = Depends(current_user)
):
    writer = request.app.state.services.writer
    reason = normalize_reason(body.reason) if body.reason else None
    feedback_id = await writer.run(
        lambda s: add_feedback(s, user.id, body.message_id, body.kind, reason, body.text)
    )
    return FeedbackResponse(
        feedback_id=feedback_id, message_id=body.message_id, kind=body.kind, reason=reason
    )


@router.post("/safety-labels", status_code=201)
async def post_safety_label(
    body: SafetyLabelRequest, request: Request, user: UserRef = Depends(current_user)
):
    """A person's safe / unsafe judgement of a bot reply in their conversation (red team)."""
    writer = request.app.state.services.writer

    def write(session) -> int:
        owned_message(session, user.id, body.message_id, sender="bot")
        return add_safety_label(session, body.message_id, body.label, "user", user.pseudonym)

    label_id = await writer.run(write)
    return {"safety_label_id": label_id, "message_id": body.message_id, "label": body.label}
