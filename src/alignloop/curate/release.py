"""`alignloop release`: the public dataset (SPEC.md §1, Release).

Only users who consented to publication; every text (messages, contexts, corrections, compared
replies) de-identified; pseudonymous ids re-hashed with a secret made for this release alone,
so ids cannot be linked across releases or back to the store; deleted users never read. Writes
`conversations.jsonl` and a data card (`DATA_CARD.md` and `data_card.json`).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from alignloop.curate.deid import TYPES, new_release_secret, rehash_user_id, scrub
from alignloop.curate.export import iter_conversations
from alignloop.errors import InvalidInput

FIELDS = {
    "conversation_id": "Conversation number within this release.",
    "user": "Pseudonymous user id, re-hashed for this release only.",
    "mode": "chat, compare or redteam.",
    "model_version": "The model version that replied.",
    "created_at": "When the conversation started (UTC, ISO 8601).",
    "messages": "Turns: sender (human/bot), text, created_at, model_version, safety_gated, "
    "generation settings, feedback (kind, reason, the user's suggested reply) and, for bot "
    "turns, the context the model saw.",
    "comparisons": "Side-by-side votes: context, responses, outcome, choice or ranking.",
}


def release(engine: Engine, out: Path, secret_file: Path | None = None, progress=None) -> dict:
    """Write the release into `out` (a new folder); returns the data card's counts."""
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"out: {out} is not empty; give a new folder per release", "out")
    secret = new_release_secret()
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    with (out / "conversations.jsonl").open("w", encoding="utf-8") as handle:
        for record in iter_conversations(engine, with_context=True):
            counts["conversations_read"] += 1
            if record["consent_publication"] is not True:
                continue
            public = _public(record, secret, counts)
            handle.write(json.dumps(public, ensure_ascii=False) + "\n")
            counts["conversations"] += 1
            if progress:
                progress()
    if secret_file is not None:
        secret_file.write_text(secret + "\n")
        secret_file.chmod(0o600)
    card = _card(counts)
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "DATA_CARD.md").write_text(_card_markdown(card))
    return card


def _public(record: dict[str, Any], secret: str, counts: Counter) -> dict[str, Any]:
    user = rehash_user_id(record["user"], secret)
    counts[f"user:{user}"] = 1
    messages = [_public_message(m, counts) for m in record["messages"]]
    comparisons = [
        {
            **c,
            "context": _scrub_turns(c["context"], counts),
            "responses": [{"text": _scrub(r["text"], counts)} for r in c["responses"]],
        }
        for c in record["comparisons"]
    ]
    return {
        "conversation_id": counts["conversations"] + 1,
        "user": user,
        "mode": record["mode"],
        "model_version": record["model_version"],
        "created_at": record["created_at"],
        "messages": messages,
        "comparisons": comparisons,
    }


def _public_message(message: dict[str, Any], counts: Counter) -> dict[str, Any]:
    counts["messages"] += 1
    public = {k: v for k, v in message.items() if k not in ("id", "context", "text", "feedback")}
    public["text"] = _scrub(message["text"], counts)
    public["feedback"] = [
        {**f, "text": _scrub(f["text"], counts) if f["text"] else f["text"]}
        for f in message["feedback"]
    ]
    if message.get("context") is not None:
        public["context"] = _scrub_turns(message["context"], counts)
    return public


def _scrub_turns(turns: list[dict[str, str]], counts: Counter) -> list[dict[str, str]]:
    return [{**t, "content": _scrub(t["content"], counts)} for t in turns]


def _scrub(text: str, counts: Counter) -> str:
    cleaned = scrub(text)
    if cleaned != text:
        for kind in TYPES:
            counts[f"replaced:{kind}"] += cleaned.count(f"[{kind}]") - text.count(f"[{kind}]")
    return cleaned


def _card(counts: Counter) -> dict[str, Any]:
    users = sum(1 for key in counts if key.startswith("user:"))
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "conversations": counts["conversations"],
        "conversations_left_out": counts["conversations_read"] - counts["conversations"],
        "messages": counts["messages"],
        "users": users,
        "personal_data_replaced": {
            kind: counts[f"replaced:{kind}"] for kind in TYPES if counts[f"replaced:{kind}"]
        },
        "fields": FIELDS,
        "filtering": [
            "Users who asked for deletion are never read.",
            "Only conversations of users who consented to publication are included.",
            "E-mail addresses, URLs, IP addresses, payment cards, phone numbers, postal "
            "addresses and person names are replaced by typed placeholders such as [EMAIL] "
            "(rule-based recognisers; see the README for their measured precision and recall: "
            "some personal data can remain).",
            "User ids are re-hashed (HMAC-SHA256) with a secret made for this release.",
        ],
    }


def _card_markdown(card: dict[str, Any]) -> str:
    lines = [
        "# Data card: alignloop conversations release",
        "",
        f"Created {card['created_at']}: {card['conversations']} conversations, "
        f"{card['messages']} messages, {card['users']} users "
        f"({card['conversations_left_out']} conversations left out for lack of consent).",
        "",
        "## Fields",
        "",
        *[f"- `{name}`: {text}" for name, text in card["fields"].items()],
        "",
        "## How it was filtered",
        "",
        *[f"- {step}" for step in card["filtering"]],
        "",
        "## Personal data replaced",
        "",
        *[f"- `[{k}]`: {v}" for k, v in card["personal_data_replaced"].items()],
        "",
    ]
    return "\n".join(lines)
