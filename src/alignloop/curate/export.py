"""Export conversations with their feedback (JSONL, or Parquet by the file's extension).

Users who asked for deletion are left out. This is the internal export (pseudonymous ids,
unscrubbed text); the public release goes through de-identification (curate/deid).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from alignloop.errors import InvalidInput
from alignloop.store.models import Comparison, Conversation, Message, ModelVersion, User

BATCH = 500


def _message(m: Message, versions: dict[int, str], with_context: bool) -> dict[str, Any]:
    record = {
        "id": m.id,
        "position": m.position,
        "sender": m.sender,
        "text": m.text,
        "created_at": m.created_at.isoformat(),
        "model_version": versions.get(m.model_version_id),
        "safety_gated": m.safety_gated,
        "generation": m.generation,
        "feedback": [
            {
                "kind": f.kind,
                "reason": f.reason,
                "text": f.text,
                "created_at": f.created_at.isoformat(),
            }
            for f in m.feedback
        ],
    }
    if with_context:
        record["context"] = m.context
    return record


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "id": c.id,
        "context": c.context,
        "responses": c.responses,
        "outcome": c.outcome,
        "choice": c.choice,
        "ranking": c.ranking,
    }


def iter_conversations(engine: Engine, with_context: bool = False) -> Iterator[dict[str, Any]]:
    """Conversation records in id order, read in batches (memory stays flat on big stores)."""
    with Session(engine) as session:
        versions = dict(session.execute(select(ModelVersion.id, ModelVersion.name)).all())
        last_id = 0
        while True:
            rows = session.execute(
                select(Conversation, User)
                .join(User, Conversation.user_id == User.id)
                .where(User.deletion_requested_at.is_(None), Conversation.id > last_id)
                .order_by(Conversation.id)
                .limit(BATCH)
                .options(selectinload(Conversation.messages).selectinload(Message.feedback))
            ).all()
            if not rows:
                return
            comparisons = _comparisons_by_conversation(session, [c.id for c, _ in rows])
            for conversation, user in rows:
                yield {
                    "conversation_id": conversation.id,
                    "user": user.pseudonym,
                    "consent_training": user.consent_training,
                    "consent_publication": user.consent_publication,
                    "mode": conversation.mode,
                    "model_version": versions.get(conversation.model_version_id),
                    "created_at": conversation.created_at.isoformat(),
                    "messages": [
                        _message(m, versions, with_context) for m in conversation.messages
                    ],
                    "comparisons": comparisons.get(conversation.id, []),
                }
            last_id = rows[-1][0].id
            session.expunge_all()


def _comparisons_by_conversation(session: Session, ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for c in session.scalars(select(Comparison).where(Comparison.conversation_id.in_(ids))):
        out.setdefault(c.conversation_id, []).append(_comparison(c))
    return out


def _for_parquet(record: dict[str, Any]) -> dict[str, Any]:
    """Parquet wants one schema: free-form JSON fields travel as JSON strings."""
    messages = [
        {**m, "generation": json.dumps(m["generation"]), "context": json.dumps(m.get("context"))}
        for m in record["messages"]
    ]
    return {**record, "messages": messages, "comparisons": json.dumps(record["comparisons"])}


def _parquet_schema():
    import pyarrow as pa

    text = pa.string()
    feedback = pa.struct([("kind", text), ("reason", text), ("text", text), ("created_at", text)])
    message = pa.struct(
        [
            ("id", pa.int64()),
            ("position", pa.int32()),
            ("sender", text),
            ("text", text),
            ("created_at", text),
            ("model_version", text),
            ("safety_gated", pa.bool_()),
            ("generation", text),
            ("feedback", pa.list_(feedback)),
            ("context", text),
        ]
    )
    return pa.schema(
        [
            ("conversation_id", pa.int64()),
            ("user", text),
            ("consent_training", pa.bool_()),
            ("consent_publication", pa.bool_()),
            ("mode", text),
            ("model_version", text),
            ("created_at", text),
            ("messages", pa.list_(message)),
            ("comparisons", text),
        ]
    )


def export(engine: Engine, out: Path, with_context: bool = False, progress=None) -> int:
    """Write every exportable conversation to `out`; returns how many were written."""
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise InvalidInput(f"--out {out}: use a .jsonl or .parquet file name", "out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    records = iter_conversations(engine, with_context)
    count = (_write_jsonl if suffix == ".jsonl" else _write_parquet)(records, tmp, progress)
    tmp.replace(out)  # a reader never sees a half-written export
    return count


def _write_jsonl(records, path: Path, progress) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
            if progress:
                progress()
    return count


def _write_parquet(records, path: Path, progress) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, batch, count = _parquet_schema(), [], 0
    with pq.ParquetWriter(path, schema) as writer:
        for record in records:
            batch.append(_for_parquet(record))
            count += 1
            if progress:
                progress()
            if len(batch) >= BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count
