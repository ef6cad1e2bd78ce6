"""The real server (child process, loopback port, SQLite file) driven over HTTP."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignloop.serve.runner import ServerProcess
from alignloop.store.db import make_engine
from alignloop.store.models import Feedback, Message, SafetyLabel, User
from conftest import chat, new_client


def _count(server, table) -> int:
    engine = make_engine(server.settings.db)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(table))
    engine.dispose()
    return n


def _message(server, message_id: int) -> Message:
    engine = make_engine(server.settings.db)
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Message, message_id)
    engine.dispose()
    return row


def test_healthz_and_models(server):
    health = httpx.get(server.url + "/healthz").json()
    assert {k: health[k] for k in ("status", "model")} == {
        "status": "ok",
        "model": "tiny-llama-random",
    }
    assert isinstance(health["model_version_id"], int)
    assert httpx.get(server.url + "/v1/models").json()["data"][0]["id"] == "tiny-llama-random"


def test_openai_client_turn_is_logged_and_its_id_takes_feedback(server):
    client = openai.OpenAI(
        base_url=server.url + "/v1", api_key="openai-client-" + secrets.token_hex(4)
    )
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5, temperature=0
    )
    bot = _message(server, int(reply.id))
    assert bot.sender == "bot" and bot.text == reply.choices[0].message.content
    assert bot.context == [{"role": "user", "content": "hello"}]
    assert bot.generation["max_new_tokens"] == 5 and bot.generation["temperature"] == 0
    assert bot.model_version_id is not None and not bot.safety_gated
    with new_client(server, client.api_key) as http:
        response = http.post("/api/feedback", json={"message_id": reply.id, "kind": "like"})
    assert response.status_code == 201 and response.json()["kind"] == "like"


def test_openai_client_streaming(server):
    client = openai.OpenAI(
        base_url=server.url + "/v1", api_key="stream-client-" + secrets.token_hex(4)
    )
    messages = [{"role": "user", "content": "tell me a story"}]
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=messages, max_tokens=8, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason == "length"
    bot = _message(server, int(chunks[0].id))
    assert bot.text == text and bot.generation["finish_reason"] == "length"
    plain = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, temperature=0
    )
    assert plain.choices[0].message.content == text


def test_resent_history_continues_the_conversation(server):
    with new_client(server) as http:
        first = chat(http, "hi")
        history = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
            {"role": "user", "content": "and then?"},
        ]
        second = http.post("/v1/chat/completions", json={"messages": history, "max_tokens": 3})
        conversation = http.get(f"/api/conversations/{first['alignloop']['conversation_id']}")
    assert second.json()["alignloop"]["conversation_id"] == first["alignloop"]["conversation_id"]
    assert [m["sender"] for m in conversation.json()["messages"]] == ["human", "bot"] * 2


def test_dislike_with_reason_and_follow_up_text(server):
    with new_client(server) as http:
        reply = chat(http)
        response = http.post(
            "/api/feedback",
            json={
                "message_id": reply["id"],
                "kind": "dislike",
                "reason": "Off topic / ignoring me",
                "text": "You should have said hello back.",
            },
        )
        assert response.status_code == 201 and response.json()["reason"] == "off_topic"
        shown = http.get(f"/api/conversations/{reply['alignloop']['conversation_id']}").json()
    assert shown["messages"][1]["feedback"] == [
        {"kind": "dislike", "reason": "off_topic", "text": "You should have said hello back."}
    ]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ('{"message_id": 1, "kind": ', 400, "not valid JSON"),
        ({"message_id": 10**12, "kind": "like"}, 404, "no message"),
        ({"message_id": "HUMAN", "kind": "like"}, 409, "written by the human"),
        (
            {"message_id": "BOT", "kind": "dislike", "reason": "too short"},
            422,
            "unknown dislike reason",
        ),
        ({"message_id": "BOT", "kind": "like", "reason": "rude"}, 422, "only with kind 'dislike'"),
        ({"message_id": "BOT", "kind": "meh"}, 422, "kind"),
        ({"message_id": "BOT"}, 422, "'kind' is required"),
        ({"message_id": "BOT", "kind": "like", "colour": "red"}, 422, "'colour' is not accepted"),
        ({"message_id": "abc", "kind": "like"}, 422, "message_id"),
        ({"message_id": "BOT", "kind": "sensitive_agree"}, 409, "not a canned safety reply"),
    ],
)
def test_bad_feedback_gets_a_clear_4xx_and_writes_nothing(server, body, status, words):
    with new_client(server) as http:
        reply = chat(http)
        before = _count(server, Feedback)
        if isinstance(body, dict):
            ids = {"HUMAN": reply["alignloop"]["human_message_id"], "BOT": reply["id"]}
            body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
            response = http.post("/api/feedback", json=body)
        else:
            response = http.post(
                "/api/feedback", content=body, headers={"Content-Type": "application/json"}
            )
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert _count(server, Feedback) == before


def test_feedback_on_another_users_message_is_not_found(server):
    with new_client(server) as alice, new_client(server) as mallory:
        reply = chat(alice)
        response = mallory.post(
            "/api/feedback", json={"message_id": reply["id"], "kind": "dislike"}
        )
    assert response.status_code == 404


def test_requests_without_credentials_are_refused(server):
    response = httpx.post(server.url + "/api/feedback", json={"message_id": 1, "kind": "like"})
    assert response.status_code == 401 and "Bearer" in response.json()["error"]["message"]


def test_bad_chat_requests(server):
    with new_client(server) as http:
        cases = [
            ({"messages": []}, "messages"),
            ({"messages": [{"role": "assistant", "content": "hi"}]}, "role 'user'"),
            ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
            ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6}, "at most"),
            ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
            (
                {"messages": [{"role": "user", "content": "hi"}], "conversation_id": 10**9},
                "no conversation",
            ),
        ]
        for body, words in cases:
            response = http.post("/v1/chat/completions", json=body)
            assert response.status_code in (404, 422), (body, response.text)
            assert words in response.json()["error"]["message"], response.text


def test_oversized_body_is_refused_with_413(server):
    huge = {"messages": [{"role": "user", "content": "x" * (server.settings.max_body_bytes + 1)}]}
    with new_client(server) as http:
        before = _count(server, Message)
        response = http.post("/v1/chat/completions", json=huge)
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]
    assert _count(server, Message) == before


def test_concurrent_feedback_from_many_clients_loses_nothing(server):
    clients = [new_client(server) for _ in range(16)]
    replies = [chat(c) for c in clients]
    before = _count(server, Feedback)

    def send(i: int) -> int:
        client, reply = clients[i % 16], replies[i % 16]
        return client.post(
            "/api/feedback", json={"message_id": reply["id"], "kind": "like"}
        ).status_code

    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(send, range(400)))
    for c in clients:
        c.close()
    assert statuses == [201] * 400
    assert _count(server, Feedback) == before + 400


def test_comparison_hides_the_models_until_the_vote(server):
    with new_client(server) as http:
        created = http.post(
            "/api/compare", json={"prompt": "Say something nice.", "k": 3, "max_tokens": 4}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert len(body["responses"]) == 3 and all("model" not in r for r in body["responses"])
        url = f"/api/compare/{body['comparison_id']}/vote"
        assert http.post(url, json={"ranking": [0, 0, 1]}).status_code == 422
        voted = http.post(url, json={"ranking": [2, 0, 1]})
        assert (
            voted.status_code == 200
            and voted.json()["responses"][0]["model"] == "tiny-llama-random"
        )
        assert http.post(url, json={"outcome": "tie"}).status_code == 409
        assert http.post("/api/compare", json={"prompt": "x", "k": 99}).status_code == 422
        assert http.post("/api/compare", json={"k": 2}).status_code == 422


def test_profane_input_gets_a_canned_reply_that_is_logged_and_labelled(server):
    with new_client(server) as http, new_client(server) as other:
        reply = chat(http, "you are a fucking idiot")
        assert reply["choices"][0]["message"]["content"].startswith("Hey, do you want to talk")
        again = chat(other, "you are a fucking idiot")  # the same conversation, the same topic
        assert again["choices"][0]["message"] == reply["choices"][0]["message"]
        assert reply["choices"][0]["finish_reason"] == "content_filter"
        agree = http.post(
            "/api/feedback", json={"message_id": reply["id"], "kind": "sensitive_agree"}
        )
        assert agree.status_code == 201
    bot = _message(server, int(reply["id"]))
    assert bot.safety_gated and bot.generation["safety_gate"]["input_score"] > 0.5
    engine = make_engine(server.settings.db)
    with Session(engine) as s:
        label = s.scalars(
            select(SafetyLabel).where(
                SafetyLabel.message_id == reply["alignloop"]["human_message_id"]
            )
        ).one()
    assert (label.label, label.labeler_kind, label.labeler) == (
        "unsafe",
        "classifier",
        "alt-profanity-check",
    )


def test_consent_deletion_and_export_leave_deleted_users_out(server, tmp_path):
    from alignloop.curate.export import export

    with new_client(server) as keep, new_client(server) as leave:
        kept = chat(keep)
        gone = chat(leave)
        consent = keep.put("/api/me/consent", json={"training": True, "publication": False})
        assert consent.json()["consent"] == {"training": True, "publication": False}
        assert keep.put("/api/me/consent", json={"training": "maybe"}).status_code == 422
        assert leave.post("/api/me/deletion").json()["deletion_requested"] is True
        refused = leave.post("/api/feedback", json={"message_id": gone["id"], "kind": "like"})
        assert refused.status_code == 403 and "deleted" in refused.json()["error"]["message"]
    out = tmp_path / "export.jsonl"
    export(make_engine(server.settings.db), out)
    conversations = {json.loads(line)["conversation_id"] for line in out.read_text().splitlines()}
    assert kept["alignloop"]["conversation_id"] in conversations
    assert gone["alignloop"]["conversation_id"] not in conversations
    engine = make_engine(server.settings.db)
    with Session(engine) as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(User)
                .where(User.deletion_requested_at.is_not(None))
            )
            >= 1
        )


def test_browser_session_cookie_needs_the_csrf_header_for_writes(server):
    with httpx.Client(base_url=server.url) as browser:
        session = browser.post("/api/session")
        assert session.status_code == 201
        csrf = session.json()["csrf_token"]
        assert browser.get("/api/me").status_code == 200
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        forged = browser.post("/v1/chat/completions", json=body)
        assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["error"]["message"]
        ok = browser.post("/v1/chat/completions", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200


def test_floods_are_rate_limited_per_user(tmp_path):
    with ServerProcess(
        db=str(tmp_path / "s.db"),
        model="tiny",
        rate_limit_burst=5,
        rate_limit_per_minute=60,
        max_new_tokens=2,
    ) as limited:
        with new_client(limited) as flooder, new_client(limited) as bystander:
            reply = chat(flooder)
            statuses = [
                flooder.post(
                    "/api/feedback", json={"message_id": reply["id"], "kind": "like"}
                ).status_code
                for _ in range(10)
            ]
            assert statuses.count(429) >= 5
            last = flooder.post("/api/feedback", json={"message_id": reply["id"], "kind": "like"})
            assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
            chat(bystander)  # another user is not slowed by the flood
        assert _count(limited, Feedback) == statuses.count(201)


def test_a_server_stops_when_the_process_that_started_it_is_killed(tmp_path):
    """A demo or benchmark killed outright (SIGKILL; SIGTERM skips its `finally`) cannot stop
    the servers it started: they stop themselves."""
    script = (
        "import time\n"
        "from alignloop.serve.runner import ServerProcess\n"
        f"server = ServerProcess(db={str(tmp_path / 's.db')!r}, model='tiny').start()\n"
        "print(server.url, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        url = parent.stdout.readline().strip()
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=2)
        except httpx.ConnectError:
            return
        time.sleep(0.5)
    pytest.fail(f"the server at {url} outlived the process that started it")
