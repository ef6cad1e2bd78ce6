"""People as the pairwise judge: the side-by-side votes collected in the store (the compare page).

A comparison holds K responses, each naming the model version that wrote it
(`model_version_id`), and one vote. For two versions a and b present in one voted comparison
the outcome for a is:

| vote       | outcome                                                                          |
|------------|----------------------------------------------------------------------------------|
| choice     | 1 if the chosen response is a's, 0 if it is b's; no outcome if it is a third     |
|            | version's (the vote says nothing about a against b)                              |
| ranking    | 1 if a's best-ranked response is above b's best-ranked one, else 0               |
| tie        | 0.5                                                                              |
| both_bad   | 0.5 (neither is preferred)                                                       |

Unvoted comparisons and responses without a model version are left out. By default only the
blind side-by-side page's comparisons count (`source` 'compare'); a regenerated chat reply
(`source` 'regenerate') shows the old reply first and the new one second, which is not blind
to position, so it counts only where asked for. The outcomes feed the same statistics as every
other judge (`ratings.win_rate_interval`, `ratings.bradley_terry`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alignloop.errors import InvalidInput, NotFound
from alignloop.evaluate.ratings import Battle
from alignloop.store.models import Comparison, ModelVersion
from alignloop.store.vocab import COMPARISON_SOURCES

DEFAULT_SOURCES = ("compare",)


@dataclass(frozen=True)
class VoteOutcomes:
    """Outcomes for version_a against version_b, one per voted comparison holding both."""

    version_a: str
    version_b: str
    outcomes: list[float] = field(default_factory=list)
    comparison_ids: list[int] = field(default_factory=list)
    contexts: list[list] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.outcomes)


def _engine(db: str | Engine) -> Engine:
    from alignloop.store.db import make_engine

    if isinstance(db, Engine):
        return db
    if "://" not in db and not Path(db).expanduser().is_file():
        raise NotFound(f"no store at {db}; give the --db the server wrote to", "db")
    return make_engine(db)


def _version_ids(session: Session) -> dict[int, str]:
    return {vid: name for vid, name in session.execute(select(ModelVersion.id, ModelVersion.name))}


def _resolve(version: str | int, names: dict[int, str], field_name: str) -> int:
    """The id of a version given by name or id; NotFound naming the field otherwise."""
    if isinstance(version, int) and version in names:
        return version
    found = [vid for vid, name in names.items() if name == version]
    if not found and isinstance(version, str) and version.isdigit() and int(version) in names:
        return int(version)
    if not found:
        known = ", ".join(sorted(names.values())) or "none yet"
        raise NotFound(f"no model version {version!r} in the store (known: {known})", field_name)
    return found[0]


def _check_sources(sources: Sequence[str]) -> None:
    unknown = set(sources) - set(COMPARISON_SOURCES)
    if unknown or not sources:
        raise InvalidInput(
            f"sources must be among {', '.join(COMPARISON_SOURCES)}; got {list(sources)}",
            "sources",
        )


def _voted(session: Session, sources: Sequence[str]) -> Iterator[Comparison]:
    query = (
        select(Comparison)
        .where(Comparison.outcome.is_not(None), Comparison.source.in_(list(sources)))
        .order_by(Comparison.id)
    )
    yield from session.scalars(query)


def pair_outcome(comparison: Comparison, version_a: int, version_b: int) -> float | None:
    """The outcome for version_a against version_b in one voted comparison (see the module
    doc), or None where the comparison says nothing about them."""
    versions = [r.get("model_version_id") for r in comparison.responses]
    ours = [i for i, v in enumerate(versions) if v == version_a]
    theirs = [i for i, v in enumerate(versions) if v == version_b]
    if not ours or not theirs or version_a == version_b:
        return None
    if comparison.outcome in ("tie", "both_bad"):
        return 0.5
    if comparison.outcome == "choice":
        if comparison.choice in ours:
            return 1.0
        return 0.0 if comparison.choice in theirs else None
    if comparison.outcome == "ranking":
        place = {index: rank for rank, index in enumerate(comparison.ranking or [])}
        best_ours, best_theirs = min(place[i] for i in ours), min(place[i] for i in theirs)
        return 1.0 if best_ours < best_theirs else 0.0
    return None


def store_vote_outcomes(
    db: str | Engine,
    version_a: str | int,
    version_b: str | int,
    sources: Sequence[str] = DEFAULT_SOURCES,
) -> VoteOutcomes:
    """People's verdicts on version_a against version_b (names or ids) from the store's voted
    comparisons, in comparison order."""
    _check_sources(sources)
    with Session(_engine(db)) as session:
        names = _version_ids(session)
        id_a = _resolve(version_a, names, "version_a")
        id_b = _resolve(version_b, names, "version_b")
        if id_a == id_b:
            raise InvalidInput("version_a and version_b are the same model version", "version_b")
        result = VoteOutcomes(names[id_a], names[id_b])
        for comparison in _voted(session, sources):
            outcome = pair_outcome(comparison, id_a, id_b)
            if outcome is not None:
                result.outcomes.append(outcome)
                result.comparison_ids.append(comparison.id)
                result.contexts.append(list(comparison.context))
    return result


def store_vote_battles(db: str | Engine, sources: Sequence[str] = DEFAULT_SOURCES) -> list[Battle]:
    """Every (version a, version b, outcome) the store's voted comparisons hold, over every pair
    of distinct versions in each comparison (named by version name), for Bradley-Terry."""
    _check_sources(sources)
    battles: list[Battle] = []
    with Session(_engine(db)) as session:
        names = _version_ids(session)
        for comparison in _voted(session, sources):
            present = sorted(
                {v for r in comparison.responses if (v := r.get("model_version_id")) in names}
            )
            for id_a, id_b in combinations(present, 2):
                outcome = pair_outcome(comparison, id_a, id_b)
                if outcome is not None:
                    battles.append((names[id_a], names[id_b], outcome))
    return battles
