"""What the app holds while it runs: one `Services` object on `app.state` (no module globals)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine

from alignloop.backends.base import Backend
from alignloop.config import ServeConfig
from alignloop.errors import AlignloopError
from alignloop.loop.schedule import LoopScheduler
from alignloop.safety.gate import SafetyGate
from alignloop.serve.limits import RateLimiter
from alignloop.store.repository import UserRef
from alignloop.store.writer import GroupCommitWriter


class NotReady(AlignloopError):
    status = 503
    code = "loading"


@dataclass
class Services:
    settings: ServeConfig
    engine: Engine
    writer: GroupCommitWriter
    limiter: RateLimiter
    gate: SafetyGate | None = None
    backend: Backend | None = None
    model_version_id: int | None = None
    load_error: str | None = None
    loop: LoopScheduler | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    users: dict[str, UserRef] = field(default_factory=dict)
    swap_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def remember_user(self, token: str, user: UserRef) -> None:
        if len(self.users) > 100_000:
            self.users.clear()
        self.users[token] = user

    def forget_token_user(self, user_id: int) -> None:
        for token in [t for t, u in self.users.items() if u.id == user_id]:
            del self.users[token]

    def require_backend(self) -> Backend:
        if self.load_error:
            raise NotReady(f"the model failed to load: {self.load_error}")
        if not self.ready.is_set() or self.backend is None:
            raise NotReady("the model is still loading; retry in a few seconds")
        return self.backend

    def deployment(self) -> tuple[Backend, int | None]:
        """The backend and the model version it serves, read together (a promotion swaps both
        at once; a turn keeps the pair it started with)."""
        with self.swap_lock:
            return self.require_backend(), self.model_version_id

    def swap(self, backend: Backend, version_id: int) -> Backend | None:
        """Serve `backend` as `version_id` from the next turn on; returns the one it replaced
        (turns under way finish on it)."""
        with self.swap_lock:
            previous, self.backend, self.model_version_id = self.backend, backend, version_id
        return previous
