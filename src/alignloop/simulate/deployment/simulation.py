"""Running a simulation: `simulate_deployment` on an engine, `simulate_into` on a store URL or
path (what a CLI command calls)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import Engine

from alignloop.simulate.deployment.bulk import BulkWriter
from alignloop.simulate.deployment.comparisons import side_by_side
from alignloop.simulate.deployment.config import DeploymentConfig, check_arguments
from alignloop.simulate.deployment.conversations import converse
from alignloop.simulate.deployment.model import SimulatedModel
from alignloop.simulate.deployment.state import Run
from alignloop.simulate.deployment.truth import Population
from alignloop.simulate.deployment.users import make_people, make_plan, write_users
from alignloop.simulate.texts import load_texts
from alignloop.store.db import make_engine, upgrade


def simulate_deployment(
    engine: Engine,
    users: int,
    messages: int,
    seed: int,
    troll_share: float = 0.3,
    config: DeploymentConfig | None = None,
    texts_from: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Population:
    """Write `users` simulated users and about `messages` messages (exactly, but for at most
    one) into the migrated store behind `engine`; return the ground truth.

    `texts_from`: a DiaSafety-style JSON file to mix real (context, response) pairs into the
    templates. `progress` is called with the number of messages written after each chunk.
    """
    config = config or DeploymentConfig()
    check_arguments(users, messages, troll_share, config)
    started = time.perf_counter()
    run = Run(
        config,
        random.Random(seed),
        load_texts(texts_from),
        BulkWriter(engine, config.chunk_rows, progress),
        Population(seed=seed),
    )
    _write(run, users, messages, troll_share)
    truth = run.truth
    truth.seconds = round(time.perf_counter() - started, 3)
    truth.settings = {
        "users": users,
        "messages": messages,
        "troll_share": troll_share,
        "texts_from": str(texts_from) if texts_from else None,
        "config": asdict(config),
    }
    return truth


def simulate_into(
    db: str,
    users: int,
    messages: int,
    seed: int,
    troll_share: float = 0.3,
    truth: str | Path | None = None,
    config: DeploymentConfig | None = None,
    texts_from: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Population:
    """`simulate_deployment` on the store at `db` (a URL or SQLite path; migrated first), the
    truth saved to `truth` (.json or .parquet) if given. What a CLI command calls."""
    engine = make_engine(db)
    try:
        upgrade(engine)
        population = simulate_deployment(
            engine, users, messages, seed, troll_share, config, texts_from, progress
        )
    finally:
        engine.dispose()
    if truth is not None:
        population.save(truth)
    return population


def _write(run: Run, users: int, messages: int, troll_share: float) -> None:
    """The model versions, the users, then their conversations and comparisons in the order
    they start; the rows written and the versions' ids go into the truth."""
    model = SimulatedModel(run)
    model.add_versions()
    people = make_people(run, users, troll_share)
    plan = make_plan(run, people, messages)
    write_users(run, people, plan)
    carry = 0
    for item in plan:
        person = people[item.person]
        if item.mode == "compare":
            side_by_side(run, model, person, item)
        else:
            carry = converse(run, model, person, item, carry)
        run.writer.flush_if_full()
    run.writer.close()
    run.truth.counts = dict(run.writer.counts)
    run.truth.model_versions = {name: id_ for id_, name in model.versions}
