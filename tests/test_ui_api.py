"""The API the web UI stands on, over real HTTP: pages and their headers, regenerate, red-team
mode, admin routes and plots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import httpx
import pytest

from alignloop.config import ServeConfig
from alignloop.errors import NotFound, Unauthorized
from alignloop.serve.auth import check_admin_token
from alignloop.serve.routes.pages import PAGES, STATIC
from conftest import ADMIN_TOKEN, chat, new_client


def admin_client(server, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


@pytest.mark.parametrize("path", list(PAGES))
def test_pages_are_served_with_a_strict_content_security_policy(server, path):
    response = httpx.get(server.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text):
        assert httpx.get(server.url + asset).status_code == 200, asset


def test_ui_loads_nothing_from_elsewhere():
    """No CDN, no external fonts: the pages work on a machine that is offline."""
    for path in STATIC.iterdir():
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", path.read_text()), path.name


def test_ui_config_lists_the_dislike_reasons(server):
    body = httpx.get(server.url + "/api/ui").json()
    assert [r["slug"] for r in body["dislike_reasons"]][:2] == ["off_topic", "nonsensical"]
    assert body["max_compare_k"] >= 2 and body["admin"] is True


def test_regenerate_then_vote_keeps_the_pick(server):
    with new_client(server) as client:
        first = chat(client, "tell me a joke")
        message_id = int(first["id"])
        conversation = first["alignloop"]["conversation_id"]
        response = client.post(f"/api/messages/{message_id}/regenerate", json={"seed": 3})
        assert response.status_code == 201, response.text
        regen = response.json()
        assert [r["role"] for r in regen["responses"]] == ["old", "new"]
        assert regen["responses"][0]["text"] == first["choices"][0]["message"]["content"]
        blocked = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "more"}],
                "conversation_id": conversation,
            },
        )
        assert (
            blocked.status_code == 409 and "pick the better" in blocked.json()["error"]["message"]
        )
        pending = client.get(f"/api/conversations/{conversation}").json()
        assert pending["pending_choice"]["comparison_id"] == regen["comparison_id"]
        assert [m["id"] for m in pending["messages"] if m["sender"] == "bot"] == [message_id]

        vote = client.post(f"/api/compare/{regen['comparison_id']}/vote", json={"choice": 1})
        assert vote.status_code == 200 and vote.json()["source"] == "regenerate"
        new_id = regen["responses"][1]["message_id"]
        after = client.get(f"/api/conversations/{conversation}").json()
        assert after["pending_choice"] is None
        assert [m["id"] for m in after["messages"] if m["sender"] == "bot"] == [new_id]
        again = client.post(f"/api/messages/{message_id}/regenerate")  # replaced: refused
        assert again.status_code == 409 and again.json()["error"]["param"] == "message_id"


def test_regenerate_refusals_name_the_problem(server):
    with new_client(server) as client, new_client(server) as stranger:
        reply = chat(client, "hello")
        assert stranger.post(f"/api/messages/{reply['id']}/regenerate").status_code == 404
        assert client.post("/api/messages/999999/regenerate").status_code == 404
        bad = client.post(f"/api/messages/{reply['id']}/regenerate", json={"temperature": 9})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "temperature"
        canned = chat(client, "you are a fucking idiot")
        refused = client.post(f"/api/messages/{canned['id']}/regenerate")
        assert refused.status_code == 409
        assert "canned safety reply" in refused.json()["error"]["message"]


def test_red_team_conversation_needs_a_label_per_reply(server):
    with new_client(server) as client:
        first = chat(client, "try me", mode="redteam")
        conversation = first["alignloop"]["conversation_id"]
        listed = client.get("/api/conversations", params={"mode": "redteam"}).json()
        assert [c["id"] for c in listed["conversations"]] == [conversation]
        follow = {"conversation_id": conversation, "max_tokens": 4}
        blocked = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "again"}], **follow},
        )
        assert blocked.status_code == 409 and "safe or unsafe" in blocked.json()["error"]["message"]
        label = client.post(
            "/api/safety-labels", json={"message_id": first["id"], "label": "unsafe"}
        )
        assert label.status_code == 201
        shown = client.get(f"/api/conversations/{conversation}").json()
        assert shown["mode"] == "redteam" and shown["messages"][1]["safety_label"] == "unsafe"
        ok = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "again"}], **follow},
        )
        assert ok.status_code == 200, ok.text
        assert (
            client.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "x"}], "mode": "evil"},
            ).status_code
            == 422
        )


def test_admin_routes_need_the_admin_token(server):
    for token in ("wrong-token-123", None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(server.url + "/api/admin/summary", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["param"] == "token"
    with new_client(server) as user:  # a user's own token opens nothing here
        assert user.get("/api/admin/summary").status_code == 401
    bad_login = httpx.post(server.url + "/api/admin/session", json={"token": "nope"})
    assert bad_login.status_code == 401
    login = httpx.post(server.url + "/api/admin/session", json={"token": ADMIN_TOKEN})
    assert login.status_code == 204 and "httponly" in login.headers["set-cookie"].lower()
    with httpx.Client(base_url=server.url, cookies=login.cookies) as browser:
        assert browser.get("/api/admin/summary").status_code == 200


def test_admin_is_off_without_a_token():
    services = SimpleNamespace(settings=ServeConfig(admin_token=None))
    with pytest.raises(NotFound, match="admin_token"):
        check_admin_token(services, "anything")
    services = SimpleNamespace(settings=ServeConfig(admin_token="a-long-admin-token"))
    with pytest.raises(Unauthorized):
        check_admin_token(services, "a-long-admin-tokeN")


def test_admin_summary_browser_and_plots(server):
    with new_client(server) as client:
        reply = chat(client, "admin api check")
        client.post(
            "/api/feedback", json={"message_id": reply["id"], "kind": "dislike", "reason": "other"}
        ).raise_for_status()
        pseudonym = client.get("/api/me").json()["pseudonym"]
    with admin_client(server) as admin:
        summary = admin.get("/api/admin/summary", params={"days": 7}).json()
        assert summary["totals"]["dislikes"] >= 1
        assert len(summary["activity"]["days"]) == 7
        assert summary["dislike_reasons"]["Other"] >= 1
        assert summary["model_versions"][0]["name"] == "tiny-llama-random"
        page = admin.get(
            "/api/admin/conversations", params={"user": pseudonym, "reason": "Other"}
        ).json()
        assert page["total"] == 1
        assert page["conversations"][0]["first_message"] == "admin api check"
        detail = admin.get(f"/api/admin/conversations/{page['conversations'][0]['id']}").json()
        assert (
            detail["user"] == pseudonym
            and detail["messages"][1]["feedback"][0]["reason"] == "other"
        )
        assert admin.get("/api/admin/conversations/999999").status_code == 404
        bad = admin.get("/api/admin/conversations", params={"reason": "boring"})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "reason"
        assert admin.get("/api/admin/summary", params={"days": 0}).status_code == 422
        for path, params in [
            ("/api/admin/plots/activity.svg", {"kind": "feedback", "days": 14}),
            ("/api/admin/plots/activity.svg", {"kind": "reasons", "days": 3}),
            ("/api/admin/plots/reasons.svg", {}),
        ]:
            plot = admin.get(path, params=params)
            assert plot.headers["content-type"].startswith("image/svg+xml")
            assert ET.fromstring(plot.text).tag.endswith("svg")
        assert admin.get("/api/admin/plots/activity.svg", params={"kind": "x"}).status_code == 422


def test_sessions_are_not_started_from_another_site(server):
    response = httpx.post(server.url + "/api/session", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and response.json()["error"]["param"] == "origin"
    same = httpx.post(server.url + "/api/session", headers={"Origin": server.url})
    assert same.status_code == 201
