"""Fast writes into the store: the bulk writer with its id assignment, the PostgreSQL sequence
update at the end, and tail hashes computed incrementally.

Rows go in with Core `insert()` executemany in chunks of about `chunk_rows`, one transaction per
chunk; ids are assigned here (continuing after the store's largest ids), so rows reference each
other before they are written. Nothing else may write to the store while a simulation runs (its
ids would clash). On PostgreSQL the id sequences are moved past the new rows at the end, so the
server's later inserts do not collide.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, text

from alignloop.store.models import Base

# Tables in foreign-key order: a chunk inserts them in this order.
TABLE_ORDER = (
    "model_versions",
    "users",
    "conversations",
    "messages",
    "comparisons",
    "feedback",
    "safety_labels",
)


class BulkWriter:
    """Assigns ids and buffers rows per table; writes them in chunks: one transaction per chunk,
    tables in foreign-key order, one executemany per set of columns.

    JSON columns whose value is SQL NULL are left out of a row (Core would write JSON 'null'),
    so such rows go in their own executemany."""

    def __init__(self, engine: Engine, chunk_rows: int, progress: Callable[[int], None] | None):
        self.engine = engine
        self.chunk_rows = chunk_rows
        self.progress = progress
        self.tables: dict[str, Table] = {name: Base.metadata.tables[name] for name in TABLE_ORDER}
        self.buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLE_ORDER}
        self.counts = dict.fromkeys(TABLE_ORDER, 0)
        self.pending = 0
        self.ids = _next_ids(engine)

    def new_id(self, table: str) -> int:
        value = self.ids[table]
        self.ids[table] = value + 1
        return value

    def add(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        self.buffers[table].append(row)
        self.pending += 1
        return row

    def flush_if_full(self) -> None:
        if self.pending >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with self.engine.begin() as conn:
            for name in TABLE_ORDER:
                rows = self.buffers[name]
                if name == "messages":
                    # A regenerated pair's loser points at its winner: winners go in first.
                    rows.sort(key=lambda r: r["superseded_by_id"] is not None)
                for group in _same_columns(rows):
                    conn.execute(insert(self.tables[name]), group)
        for name, rows in self.buffers.items():
            self.counts[name] += len(rows)
            rows.clear()
        self.pending = 0
        if self.progress is not None:
            self.progress(self.counts["messages"])

    def close(self) -> None:
        """Write what is left and let the store's own inserts continue after these ids."""
        self.flush()
        advance_sequences(self.engine)


def _same_columns(rows: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups.values()


def _next_ids(engine: Engine) -> dict[str, int]:
    """Per table, the first id after the store's largest."""
    with engine.connect() as conn:
        return {
            name: (conn.scalar(select(func.max(Base.metadata.tables[name].c.id))) or 0) + 1
            for name in TABLE_ORDER
        }


def advance_sequences(engine: Engine) -> None:
    """PostgreSQL: move each id sequence past the ids written here."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for name in TABLE_ORDER:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name} "
                    "HAVING max(id) IS NOT NULL"
                )
            )


class TailHash:
    """repository.tail_hash, computed incrementally along a conversation: the digest of
    json.dumps([[role, content], ...], ensure_ascii=False) for every prefix."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b"[")
        self._separator = b""
        self._parts: dict[tuple[str, str], bytes] = {}  # candidates peeked since the last push

    def _part(self, role: str, content: str) -> bytes:
        part = self._parts.get((role, content))
        if part is None:
            part = self._separator + json.dumps([role, content], ensure_ascii=False).encode()
            self._parts[role, content] = part
        return part

    def peek(self, role: str, content: str) -> str:
        """The digest if (role, content) were appended."""
        digest = self._hash.copy()
        digest.update(self._part(role, content) + b"]")
        return digest.hexdigest()

    def push(self, role: str, content: str) -> None:
        self._hash.update(self._part(role, content))
        self._separator = b", "
        self._parts.clear()
