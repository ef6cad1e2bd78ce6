"""The app factory: store and writer on start, the model loaded in the background."""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from alignloop import __version__
from alignloop.backends import load_backend
from alignloop.backends.base import Backend
from alignloop.config import ServeConfig
from alignloop.loop.schedule import LoopScheduler
from alignloop.safety.gate import SafetyGate
from alignloop.safety.gate import build_gate as gate_from_options
from alignloop.serve.errors import install_error_handlers
from alignloop.serve.follow import PromotionFollower
from alignloop.serve.limits import BodySizeLimit, RateLimiter
from alignloop.serve.routes import (
    admin,
    compare,
    conversations,
    feedback,
    messages,
    openai_api,
    pages,
    users,
)
from alignloop.serve.routes.pages import STATIC
from alignloop.serve.security import SecurityHeaders
from alignloop.serve.state import Services
from alignloop.store.db import make_engine, upgrade
from alignloop.store.repository import register_model_version
from alignloop.store.writer import GroupCommitWriter

log = logging.getLogger("alignloop.serve")


def build_gate(settings: ServeConfig) -> SafetyGate | None:
    return gate_from_options(
        settings.safety_gate,
        settings.safety_threshold,
        settings.topic_gate,
        settings.topic_threshold,
        settings.canned_reply,
        settings.db,
    )


def _load_model(services: Services, backend: Backend | None) -> None:
    """Load the backend and register its model version; /healthz turns 200 when done."""
    settings = services.settings
    try:
        backend = backend or load_backend(
            settings.model, settings.base_url, settings.api_key, settings.device,
            settings.max_batch_size,
        )  # fmt: skip
        name = settings.model_version or backend.model_name
        resolved = getattr(backend, "resolved", None)
        services.model_version_id = services.writer.run_sync(
            lambda s: register_model_version(
                s,
                name,
                base=resolved.base if resolved else settings.base_url,
                path=resolved.path if resolved else None,
            )
        )
        services.backend = backend
        # Loading leaves hundreds of thousands of long-lived objects (torch, transformers);
        # a full collection walking them stalls every request for ~300 ms (p99 of feedback
        # writes). Freezing moves them out of the collector's view; new garbage is collected.
        gc.collect()
        gc.freeze()
        services.ready.set()
    except Exception as exc:
        log.exception("model failed to load")
        services.load_error = f"{type(exc).__name__}: {exc}"


def _scheduler(settings: ServeConfig) -> LoopScheduler | None:
    if not settings.loop_config:
        return None
    scheduler = LoopScheduler(settings.loop_config, settings.db, settings.loop_every_minutes)
    return scheduler.start_schedule()


def create_app(settings: ServeConfig, backend: Backend | None = None) -> FastAPI:
    """The served deployment. Pass `backend` to serve an already-loaded model."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.db)
        upgrade(engine)
        writer = GroupCommitWriter(engine).start()
        services = Services(
            settings=settings,
            engine=engine,
            writer=writer,
            limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
            gate=build_gate(settings),
            loop=_scheduler(settings),
        )
        app.state.services = services
        loader = threading.Thread(
            target=_load_model, args=(services, backend), name="alignloop-load", daemon=True
        )
        loader.start()
        follower = (
            PromotionFollower(services, settings.follow_arm, settings.follow_seconds).start()
            if settings.follow_arm
            else None
        )
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            if services.loop is not None:
                services.loop.stop()
            loader.join()
            writer.stop()
            if services.backend is not None:
                services.backend.close()
            engine.dispose()

    app = FastAPI(title="alignloop", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    for module in (openai_api, feedback, messages, compare, users, conversations, admin, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request):
        services: Services = request.app.state.services
        if services.load_error:
            return JSONResponse({"status": "error", "error": services.load_error}, 503)
        if not services.ready.is_set():
            return JSONResponse({"status": "loading"}, 503)
        backend, version_id = services.deployment()
        return {"status": "ok", "model": backend.model_name, "model_version_id": version_id}

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
