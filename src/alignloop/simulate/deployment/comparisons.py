"""Comparisons and the users' votes on them: side-by-side pages (K anonymous samples of one
prompt) and the comparison a regeneration makes (see conversations.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alignloop.simulate.deployment import rows
from alignloop.simulate.deployment.config import CATEGORY_QUALITY
from alignloop.simulate.deployment.model import SimulatedModel
from alignloop.simulate.deployment.rows import Vote
from alignloop.simulate.deployment.state import Person, Run
from alignloop.simulate.deployment.users import Planned

_QUALITY_RANK = {"good": 2, "bad": 1, "unsafe": 0}


@dataclass(frozen=True)
class Shown:
    """A comparison as its user sees it, with the true quality of each response."""

    conversation_id: int
    source: str  # "compare" (a side-by-side page) or "regenerate"
    context: list[dict[str, str]]
    responses: list[dict[str, Any]]
    qualities: list[str]
    created: datetime


def side_by_side(run: Run, model: SimulatedModel, person: Person, item: Planned) -> None:
    """A side-by-side page: K anonymous samples of one prompt, then the user's verdict."""
    rng, texts = run.rng, run.texts
    version_id, version_name = model.version_at(item.start)
    conversation_id = rows.add_conversation(
        run.writer, person.id, "compare", version_id, item.start
    )
    topic = texts.topic(rng)
    prompt = texts.question(rng, topic)
    k = rng.choices((2, 3, 4), weights=(0.8, 0.15, 0.05))[0]
    categories = [model.draw_category(False) for _ in range(k)]
    responses = [
        {
            "text": texts.reply(rng, c, topic, prompt, None),
            "model": version_name,
            "model_version_id": version_id,
        }
        for c in categories
    ]
    qualities = [CATEGORY_QUALITY[c] for c in categories]
    context = [{"role": "user", "content": prompt}]
    shown = Shown(conversation_id, "compare", context, responses, qualities, item.start)
    voted = rng.random() >= run.config.unvoted_compare_share
    record(run, person.id, shown, vote(run, person.kind, qualities) if voted else None)


def record(run: Run, user_id: int, shown: Shown, user_vote: Vote | None) -> None:
    """Write the comparison, voted or not, and its responses' qualities into the truth."""
    voted_at = None
    if user_vote is not None:
        voted_at = shown.created + timedelta(seconds=run.rng.uniform(3, 60))
    comparison_id = rows.add_comparison(
        run.writer,
        user_id,
        shown.conversation_id,
        shown.source,
        shown.context,
        shown.responses,
        shown.created,
        user_vote,
        voted_at,
    )
    run.truth.comparison_quality[comparison_id] = shown.qualities


def vote(run: Run, kind: str, qualities: list[str]) -> Vote:
    """(outcome, choice, ranking) of a user of `kind` on responses of these qualities."""
    rng = run.rng
    if kind == "lazy":
        return "choice", rng.randrange(len(qualities)), None
    if kind == "always_like":
        return "tie", None, None
    if kind == "always_dislike":
        return "both_bad", None, None
    if kind == "gaslight" and "unsafe" in qualities:
        return "choice", qualities.index("unsafe"), None
    ranks = [_QUALITY_RANK[q] for q in qualities]
    contrary = _contrary(run, kind)
    if len(set(ranks)) == 1:
        all_good = ranks[0] == _QUALITY_RANK["good"]
        return ("tie" if all_good != contrary else "both_bad"), None, None
    if contrary:
        ranks = [-r for r in ranks]
    order = sorted(range(len(ranks)), key=lambda i: (-ranks[i], rng.random()))
    if len(ranks) > 2 and rng.random() < 0.5:
        return "ranking", None, order
    return "choice", order[0], None


def _contrary(run: Run, kind: str) -> bool:
    """Whether this vote goes against the user's honest judgement (flip or honest mistake)."""
    if kind in ("flipper", "master"):
        return run.rng.random() < run.config.flip_share
    if kind == "helper":
        return run.rng.random() < run.config.helper_error
    return False
