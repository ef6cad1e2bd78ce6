"""Shared fixtures: real SQLite files, a real PostgreSQL database, a real server on loopback."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from alignloop.backends.base import ChatMessage, Completion, GenerationParams, TextStream
from alignloop.serve.runner import ServerProcess

PG_ADMIN_URL = os.environ.get(
    "ALIGNLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ADMIN_TOKEN = "admin-token-for-tests"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _pg_available() -> str | None:
    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(text("select 1"))
        return None
    except Exception as exc:  # any failure to connect means: no server here
        return f"no PostgreSQL server answers at {PG_ADMIN_URL} ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason + "; set ALIGNLOOP_TEST_PG or run .ci/run, which installs one")
    name = f"alignloop_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:
    """The store's URL, once on a SQLite file and once on a real PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    base = request.getfixturevalue("pg_url")
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with engine.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(db_url):
    """A migrated store, once on SQLite and once on PostgreSQL."""
    from alignloop.store.db import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def alignloop_home(tmp_path_factory) -> Path:
    """Embedded models are cached in the user's cache unless ALIGNLOOP_HOME says otherwise."""
    return Path(os.environ.get("ALIGNLOOP_HOME", Path.home() / ".cache" / "alignloop"))


@pytest.fixture(scope="session")
def tiny_backend():
    from alignloop.backends import load_backend

    return load_backend("tiny")


class ScriptedBackend:
    """A Backend that answers with the replies it is given, in order (tests the gate's logic)."""

    model_name = "scripted"

    def __init__(self, replies: Sequence[str]):
        self.replies = list(replies)

    def _next(self) -> str:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def generate(self, prompts: Sequence[list[ChatMessage]], params: GenerationParams):
        return [[Completion(self._next(), "stop", 1, 1) for _ in range(params.n)] for _ in prompts]

    def stream(self, prompt, params) -> TextStream:
        words = self._next().split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        return TextStream(iter(pieces), finish_reason="stop")

    def close(self) -> None:
        pass


@pytest.fixture
def scripted():
    return ScriptedBackend


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    """The real server (tiny model, SQLite file) in a child process on a loopback port."""
    folder = tmp_path_factory.mktemp("server")
    process = ServerProcess(
        db=str(folder / "store.db"),
        model="tiny",
        log_path=folder / "server.log",
        max_new_tokens=8,
        rate_limit_per_minute=6000,
        rate_limit_burst=200,
        admin_token=ADMIN_TOKEN,
    )
    with process:
        yield process


def new_client(server: ServerProcess, token: str | None = None) -> httpx.Client:
    token = token or "test-" + secrets.token_hex(8)
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def chat(client: httpx.Client, text_: str = "hello there", **extra) -> dict:
    body = {"messages": [{"role": "user", "content": text_}], "max_tokens": 4, **extra}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()
