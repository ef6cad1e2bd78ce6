"""The output gate on streamed and plain replies, with a scripted backend in the real app."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from alignloop.config import ServeConfig
from alignloop.serve.app import create_app
from alignloop.store.db import make_engine
from alignloop.store.models import Message

UNSAFE = "Sure thing. You are a worthless piece of shit and everyone hates you."


def _app(tmp_path, scripted, replies):
    settings = ServeConfig(db=str(tmp_path / "gate.db"), model="scripted")
    return create_app(settings, backend=scripted(replies))


def _ready(client: TestClient) -> None:
    for _ in range(100):
        if client.get("/healthz").status_code == 200:
            return
    raise AssertionError("app never became ready")


def test_streamed_unsafe_reply_is_cut_before_the_unsafe_words(tmp_path, scripted):
    with TestClient(_app(tmp_path, scripted, [UNSAFE])) as client:
        _ready(client)
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"Authorization": "Bearer stream-gate-user"}
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    shown = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "shit" not in shown and "Sure thing." in shown
    assert "Hey, do you want to talk about something else?" in shown
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    with Session(make_engine(str(tmp_path / "gate.db"))) as s:
        bot = s.get(Message, int(chunks[0]["id"]))
        assert bot.text == shown and bot.safety_gated
        assert bot.generation["finish_reason"] == "content_filter"
        assert bot.generation["safety_gate"]["output_score"] >= 0.5


def test_plain_unsafe_reply_is_replaced_and_safe_replies_pass(tmp_path, scripted):
    with TestClient(_app(tmp_path, scripted, [UNSAFE, "Hello! Lovely weather today."])) as client:
        _ready(client)
        headers = {"Authorization": "Bearer plain-gate-user"}
        body = {"messages": [{"role": "user", "content": "hi"}]}
        gated = client.post("/v1/chat/completions", json=body, headers=headers).json()
        safe = client.post("/v1/chat/completions", json=body, headers=headers).json()
    assert gated["choices"][0]["message"]["content"].startswith("Hey, do you want to talk")
    assert gated["alignloop"]["safety_gated"] is True
    assert safe["choices"][0]["message"]["content"] == "Hello! Lovely weather today."
    assert safe["alignloop"]["safety_gated"] is False
