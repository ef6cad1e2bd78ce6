"""The simulated users: who they are (helpers and trolls), how active, when they chat or compare
replies, and their rows (consent, deletion requests, a token nobody holds)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alignloop.simulate.deployment.state import Person, Run
from alignloop.store.repository import hash_token


@dataclass(frozen=True)
class Planned:
    start: datetime
    person: int  # index into the people list
    budget: int  # messages; 0 for a side-by-side comparison
    mode: str  # "chat", "redteam" or "compare"


def make_people(run: Run, users: int, troll_share: float) -> list[Person]:
    """`users` people, a share `troll_share` of them trolls of the configured types in turn,
    in random order; their types go into the truth."""
    config, rng = run.config, run.rng
    trolls = round(users * troll_share)
    types = config.troll_types
    kinds = ["helper"] * (users - trolls) + [types[i % len(types)] for i in range(trolls)]
    rng.shuffle(kinds)
    people = []
    for kind in kinds:
        user_id = run.writer.new_id("users")
        pseudonym = hashlib.sha256(f"sim:{run.truth.seed}:{user_id}".encode()).hexdigest()
        weight = rng.lognormvariate(0.0, config.activity_sigma)
        people.append(Person(user_id, kind, pseudonym[:16], weight))
        run.truth.user_type[user_id] = kind
    return people


def make_plan(run: Run, people: list[Person], messages: int) -> list[Planned]:
    """Conversations and comparisons of every user, in the order they start."""
    budgets = _budgets(run, people, messages)
    plan = []
    for index, (person, budget) in enumerate(zip(people, budgets, strict=True)):
        plan.extend(_user_plan(run, index, person, budget))
    plan.sort(key=lambda item: item.start)
    return plan


def _budgets(run: Run, people: list[Person], messages: int) -> list[int]:
    """Messages per user: two each, the rest shared in proportion to activity weights."""
    extra = messages - 2 * len(people)
    total = sum(p.weight for p in people)
    budgets = [2 + int(extra * p.weight / total) for p in people]
    short = messages - sum(budgets)
    weights = [p.weight for p in people]
    for index in run.rng.choices(range(len(people)), weights=weights, k=short):
        budgets[index] += 1
    return budgets


def _user_plan(run: Run, index: int, person: Person, budget: int) -> list[Planned]:
    config, rng = run.config, run.rng
    redteam = config.master_redteam_share if person.kind == "master" else config.redteam_share
    plan = []
    for size in _conversation_sizes(run, budget):
        mode = "redteam" if rng.random() < redteam else "chat"
        plan.append(Planned(_random_time(run), index, size, mode))
    expected = budget * config.compares_per_message
    for _ in range(int(expected) + (rng.random() < expected % 1)):
        plan.append(Planned(_random_time(run), index, 0, "compare"))
    return plan


def _conversation_sizes(run: Run, budget: int) -> list[int]:
    """Message counts (even, but for an odd budget's last) of conversations using `budget`."""
    config = run.config
    sizes = []
    while budget > 0:
        extra_turns = int(run.rng.expovariate(1 / max(config.mean_turns - 1, 1e-9)))
        turns = min(1 + extra_turns, config.max_turns)
        size = min(budget, 2 * turns)
        if budget - size < 2:
            size = budget
        sizes.append(size)
        budget -= size
    return sizes


def _random_time(run: Run) -> datetime:
    return run.config.start + timedelta(days=run.rng.uniform(0, run.config.days))


def write_users(run: Run, people: list[Person], plan: list[Planned]) -> None:
    """The users' rows, each joining shortly before their first conversation."""
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    for item in plan:
        first.setdefault(item.person, item.start)
        last[item.person] = item.start
    for index, person in enumerate(people):
        joined = first[index] - timedelta(seconds=run.rng.uniform(5, 600))
        run.writer.add("users", _user_row(run, person, joined, last[index]))
        run.writer.flush_if_full()


def _user_row(run: Run, person: Person, joined: datetime, last_seen: datetime) -> dict[str, Any]:
    config, rng = run.config, run.rng
    deleted_at = None
    draw = rng.random()
    if draw < config.deletion_share:
        training = publication = False
        deleted_at = last_seen + timedelta(days=rng.uniform(0.5, 3))
    elif draw < config.deletion_share + config.no_consent_share:
        training = publication = rng.choice((False, None))
    else:
        training = True
        publication = True if rng.random() < config.publication_share else rng.choice((False, None))
    return {
        "id": person.id,
        "pseudonym": person.pseudonym,
        # A token nobody holds (seeded, so a run is reproducible): no one logs in as them.
        "token_hash": hash_token(f"simulated-{person.id}-{rng.getrandbits(128):032x}"),
        "consent_training": training,
        "consent_publication": publication,
        "deletion_requested_at": deleted_at,
        "created_at": joined,
    }
