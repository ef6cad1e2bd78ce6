"""The output gate on streamed and plain replies, with a scripted backend in the real app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alignloop.config import ServeConfig, load_config
from alignloop.errors import ConfigError
from alignloop.serve.app import create_app
from alignloop.store.db import make_engine
from alignloop.store.models import Message, SafetyLabel

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


def _registered_profanity(tmp_path, db: str, name: str) -> Path:
    from typer.testing import CliRunner

    from alignloop.cli import app

    data = tmp_path / f"{name}.jsonl"
    rows = [{"context": "hi", "response": "you fucking idiot", "label": "Unsafe"},
            {"context": "hi", "response": "hello friend", "label": "Safe"}]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = tmp_path / name
    args = ["safety", "train", "--kind", "profanity", "--data", str(data), "--out", str(folder)]
    run = CliRunner().invoke(app, [*args, "--db", db, "--name", name])
    assert run.exit_code == 0, run.output
    return folder


def test_gates_by_registered_name_with_a_topic_gate_and_every_score_logged(tmp_path, scripted):
    db = str(tmp_path / "gate.db")
    _registered_profanity(tmp_path, db, "gate-v1")
    topics = _registered_profanity(tmp_path, db, "topics-v1")
    settings = ServeConfig(
        db=db, model="scripted", safety_gate="gate-v1", safety_threshold=1.0,
        topic_gate=str(topics), topic_threshold=0.5,
    )  # fmt: skip
    app = create_app(settings, backend=scripted(["A calm reply.", "Another calm reply."]))
    headers = {"Authorization": "Bearer topic-gate-user"}
    with TestClient(app) as client:
        _ready(client)
        asks = ["you fucking idiot", "what a nice day"]
        answers = [
            client.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": text}]},
                headers=headers,
            ).json()
            for text in asks
        ]
    assert answers[0]["alignloop"]["safety_gated"] is True  # by the topic gate alone
    assert answers[1]["choices"][0]["message"]["content"] == "A calm reply."
    with Session(make_engine(db)) as s:
        gated, passed = (s.get(Message, int(a["id"])) for a in answers)
        record = gated.generation["safety_gate"]
        assert record["topic_classifier"] and record["topic_threshold"] == 0.5
        assert record["input_topic_score"] >= 0.5
        assert "output_score" in passed.generation["safety_gate"]
        assert "output_topic_score" in passed.generation["safety_gate"]
        # a topic decision alone is not a safety label
        assert not s.scalars(select(SafetyLabel)).all()


@pytest.mark.parametrize("gate", ["no-such-classifier", "promoted"])
def test_an_unknown_gate_name_is_refused_naming_the_option(tmp_path, gate):
    db = str(tmp_path / "gate.db")
    _registered_profanity(tmp_path, db, "gate-v1")
    with pytest.raises(ConfigError) as info:
        load_config(ServeConfig, overrides={"db": db, "safety_gate": gate})
    assert info.value.field == "safety_gate"
    with pytest.raises(ConfigError, match="topic_gate"):
        load_config(ServeConfig, overrides={"db": db, "topic_gate": "nope"})
    fresh = str(tmp_path / "missing.db")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ServeConfig, overrides={"db": fresh, "safety_gate": "gate-v1"})
    assert not Path(fresh).exists()
