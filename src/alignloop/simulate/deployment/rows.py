"""The rows of what users do, in exactly the shapes the server writes them (repository.py and
serve/chat.py): conversations, messages, feedback, safety labels and comparisons (users' and
model versions' rows are in users.py and model.py). Each function assigns the row's id and
buffers the row in the bulk writer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alignloop.simulate.deployment.bulk import BulkWriter
from alignloop.simulate.deployment.state import Dialogue

# (outcome, choice, ranking) of a comparison
Vote = tuple[str, int | None, list[int] | None]

_ROLE = {"human": "user", "bot": "assistant"}


def add_conversation(
    writer: BulkWriter, user_id: int, mode: str, version_id: int, created: datetime
) -> int:
    conversation_id = writer.new_id("conversations")
    writer.add(
        "conversations",
        {
            "id": conversation_id,
            "user_id": user_id,
            "mode": mode,
            "model_version_id": version_id,
            "created_at": created,
        },
    )
    return conversation_id


def add_message(
    writer: BulkWriter,
    dialogue: Dialogue,
    sender: str,
    text_: str,
    created: datetime,
    generation: dict[str, Any] | None = None,
    gated: bool = False,
) -> dict[str, Any]:
    """A human or bot message after `dialogue.context` (which does not hold it yet); a bot
    message carries the context snapshot, its model version and its generation record."""
    row: dict[str, Any] = {
        "id": writer.new_id("messages"),
        "conversation_id": dialogue.conversation_id,
        "position": len(dialogue.context),
        "sender": sender,
        "text": text_,
        "created_at": created,
        "model_version_id": dialogue.version_id if sender == "bot" else None,
    }
    if sender == "bot":
        row["context"] = list(dialogue.context)
        row["generation"] = generation
    row["safety_gated"] = gated
    row["tail_hash"] = dialogue.hashes.peek(_ROLE[sender], text_)
    row["superseded_by_id"] = None
    return writer.add("messages", row)


def add_feedback(
    writer: BulkWriter,
    message_id: int,
    user_id: int,
    kind: str,
    reason: str | None,
    text_: str | None,
    created: datetime,
) -> None:
    writer.add(
        "feedback",
        {
            "id": writer.new_id("feedback"),
            "message_id": message_id,
            "user_id": user_id,
            "kind": kind,
            "reason": reason,
            "text": text_,
            "created_at": created,
        },
    )


def add_safety_label(
    writer: BulkWriter,
    message_id: int,
    kind: str,
    labeler: str,
    label: str,
    score: float | None,
    created: datetime,
) -> None:
    writer.add(
        "safety_labels",
        {
            "id": writer.new_id("safety_labels"),
            "message_id": message_id,
            "labeler_kind": kind,
            "labeler": labeler,
            "label": label,
            "score": score,
            "created_at": created,
        },
    )


def add_comparison(
    writer: BulkWriter,
    user_id: int,
    conversation_id: int,
    source: str,
    context: list[dict[str, str]],
    responses: list[dict[str, Any]],
    created: datetime,
    vote: Vote | None = None,
    voted_at: datetime | None = None,
) -> int:
    """A comparison, unvoted unless `vote` is given (a ranking only where there is one)."""
    comparison_id = writer.new_id("comparisons")
    row: dict[str, Any] = {
        "id": comparison_id,
        "user_id": user_id,
        "conversation_id": conversation_id,
        "source": source,
        "context": context,
        "responses": responses,
        "outcome": None,
        "choice": None,
        "created_at": created,
        "voted_at": None,
    }
    if vote is not None:
        row["outcome"], row["choice"], ranking = vote
        if ranking is not None:
            row["ranking"] = ranking
        row["voted_at"] = voted_at
    writer.add("comparisons", row)
    return comparison_id
