"""`alignloop export`: JSONL and Parquet, the same records, deleted users left out."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from alignloop.store.db import make_engine, upgrade
from alignloop.store.repository import (
    Turn,
    add_feedback,
    log_turn,
    request_deletion,
    user_for_token,
)


def _store(path):
    engine = make_engine(str(path))
    upgrade(engine)
    with Session(engine) as s, s.begin():
        kept = user_for_token(s, "kept-user-token")
        gone = user_for_token(s, "gone-user-token")
        turn = log_turn(
            s, Turn(kept.id, [{"role": "user", "content": "hi"}], "hello", None, {"t": 1})
        )
        add_feedback(s, kept.id, turn.bot_message_id, "dislike", "other", "say more")
        log_turn(s, Turn(gone.id, [{"role": "user", "content": "secret"}], "ok", None))
        request_deletion(s, gone.id)
    return engine


def _export_cli(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    argv = ["export", "--db", str(tmp_path / "s.db"), "--out", str(tmp_path / name), *extra]
    return subprocess.run(
        [sys.executable, "-m", "alignloop", *argv], capture_output=True, text=True, timeout=120
    )


def test_jsonl_and_parquet_exports_hold_the_same_conversations(tmp_path):
    _store(tmp_path / "s.db")
    for name in ("out.jsonl", "out.parquet"):
        result = _export_cli(tmp_path, name, "--with-context")
        assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert [m["sender"] for m in record["messages"]] == ["human", "bot"]
    assert record["messages"][1]["feedback"][0]["reason"] == "other"
    assert record["messages"][1]["context"] == [{"role": "user", "content": "hi"}]
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["conversation_id"] for r in table] == [record["conversation_id"]]
    assert table[0]["messages"][1]["feedback"][0]["text"] == "say more"
    assert json.loads(table[0]["messages"][1]["generation"]) == {"t": 1}


def test_export_refuses_an_unknown_format(tmp_path):
    _store(tmp_path / "s.db")
    result = _export_cli(tmp_path, "out.csv")
    assert result.returncode == 2 and ".jsonl or .parquet" in result.stderr
    assert not (tmp_path / "out.csv").exists()
