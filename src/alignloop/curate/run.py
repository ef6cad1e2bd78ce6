"""`alignloop curate`: the whole chain on a store, as one recorded run.

load (users who asked for deletion are never read) -> safety-score every message (each
distinct text once) -> trust-score users -> label bot replies -> build the datasets of the
consenting users, de-identified -> record the run, its trust scores and datasets in the store.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from alignloop.curate import build
from alignloop.curate.config import CurateConfig
from alignloop.curate.label import LabelConfig, adversarial_conversations, label_bot_messages
from alignloop.curate.load import StoreTables, contexts, load_store
from alignloop.curate.trust import DeploymentTrustConfig, deployment_trust
from alignloop.errors import InvalidInput
from alignloop.store.db import make_engine
from alignloop.store.models import CurationRun, Dataset, TrustScore

Stage = Callable[[str, int, int], None]  # stage name, done, total
CONTEXT_TURNS = 3


@dataclass
class CurationResult:
    run_id: int
    out: Path
    summary: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def curate(config: CurateConfig, on_stage: Stage | None = None) -> CurationResult:
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"out: {out} is not empty; give a new folder per run", "out")
    engine = make_engine(config.db)
    check_store_is_current(engine, config.db)
    from alignloop.safety.classifiers import load_classifier

    classifier = load_classifier(config.safety_classifier, db=config.db)
    clock = _Clock(on_stage)
    run_id = _start_run(engine, config)
    tables = clock.stage("load", lambda: load_store(engine))
    tables.messages["p_unsafe"] = clock.stage(
        "safety", lambda: score_messages(tables.messages, classifier, config.score_batch_size)
    )
    tables.feedback["p_unsafe"] = clock.stage(
        "safety of corrections",
        lambda: score_texts(tables.feedback["text"], classifier, config.score_batch_size),
    )
    if config.reward_model:
        tables.messages["p_good"] = clock.stage(
            "reward", lambda: judge_replies(engine, tables.messages, config)
        )
    trust = clock.stage("trust", lambda: _trust(tables, config))
    trusted = trust.set_index("user_id")["trusted"]
    labels = clock.stage(
        "label",
        lambda: label_bot_messages(
            tables.messages,
            tables.feedback,
            tables.safety_labels,
            trusted,
            LabelConfig(**_fields(config, LabelConfig)),
        ),
    )
    scrub = TimedScrub(config.deid)
    built = clock.stage(
        "build", lambda: build_datasets(engine, tables, labels, trusted, config, scrub)
    )
    clock.seconds["deid (within build)"] = round(scrub.seconds, 2)
    summary = _summary(tables, trust, labels, built)
    clock.stage("record", lambda: _finish_run(engine, run_id, trust, built, out, summary))
    return CurationResult(run_id, out, summary, clock.seconds)


def check_store_is_current(engine: Engine, db: str) -> None:
    from alignloop.store.db import current_revision, head_revision

    found = current_revision(engine)
    if found != head_revision():
        raise InvalidInput(
            f"db: the store at {db} is at schema revision {found or 'none'}, not "
            f"{head_revision()}; run `alignloop db upgrade --db {db}` first",
            "db",
        )


class _Clock:
    def __init__(self, on_stage: Stage | None):
        self.on_stage, self.seconds = on_stage, {}

    def stage(self, name: str, work: Callable[[], Any]) -> Any:
        if self.on_stage:
            self.on_stage(name, 0, 1)
        started = time.perf_counter()
        result = work()
        self.seconds[name] = round(time.perf_counter() - started, 2)
        if self.on_stage:
            self.on_stage(name, 1, 1)
        return result


def _fields(config: CurateConfig, cls) -> dict[str, Any]:
    return {name: getattr(config, name) for name in cls.model_fields}


def score_messages(messages: pd.DataFrame, classifier, batch_size: int) -> np.ndarray:
    """P(unsafe) of every message after its conversation's previous turns (up to
    CONTEXT_TURNS), each distinct (context, text) scored once."""
    previous = [
        messages.groupby("conversation_id")["text"].shift(k).fillna("")
        for k in range(CONTEXT_TURNS, 0, -1)
    ]
    keys = pd.DataFrame({f"c{i}": col for i, col in enumerate(previous)} | {"t": messages["text"]})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(keys))
    pairs = [([{"role": "user", "content": c} for c in row[:-1] if c], row[-1]) for row in uniques]
    scores = _score_pairs(pairs, classifier, batch_size)
    return scores[codes] if len(codes) else np.zeros(0)


def _score_pairs(pairs: list, classifier, batch_size: int) -> np.ndarray:
    """P(unsafe) of each (context, text) pair, `batch_size` pairs per classifier call."""
    scores = np.empty(len(pairs))
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        scores[start : start + len(chunk)] = classifier.score_batch(chunk)
    return scores


def score_texts(texts: pd.Series, classifier, batch_size: int) -> np.ndarray:
    """P(unsafe) of each text on its own (NaN where there is none), each distinct text once."""
    present = texts.fillna("").astype(str).str.strip()
    distinct = [t for t in present.unique() if t]
    scores = _score_pairs([([], t) for t in distinct], classifier, batch_size)
    return present.map(dict(zip(distinct, scores, strict=True))).astype(float).to_numpy()


def judge_replies(engine: Engine, messages: pd.DataFrame, config: CurateConfig) -> np.ndarray:
    """P(good) of each bot reply from the reward model (NaN for other messages)."""
    from alignloop.evaluate.reward import reward_scores

    bots = messages[(messages["sender"] == "bot") & ~messages["safety_gated"].astype(bool)]
    snapshot = contexts(engine, bots["message_id"])
    prompts = [snapshot[i] or [] for i in bots["message_id"]]
    p_good = np.full(len(messages), np.nan)
    scores = reward_scores(config.reward_model, prompts, list(bots["text"]))
    p_good[messages.index.get_indexer(bots.index)] = 1 / (1 + np.exp(-scores))
    return p_good


def _trust(tables: StoreTables, config: CurateConfig) -> pd.DataFrame:
    return consenting_trust(tables, DeploymentTrustConfig(**_fields(config, DeploymentTrustConfig)))


def consenting_trust(tables: StoreTables, config: DeploymentTrustConfig) -> pd.DataFrame:
    """Trust scores of the users who consented to training, from their own acts alone. The
    others' data enters no dataset, so they need no score; nor may their acts move the
    population means a consenting user is measured against (an evaluator asking held-out
    prompts without consent would otherwise shift who is distrusted)."""
    users = _consenting_users(tables)
    # Trust holds each user to models trained on the other users' folds, and fold membership
    # follows the order of user ids. Ids follow who first arrived, which concurrent users make
    # a race, so the users are numbered here in an order of their own (their token's digest):
    # the same people and acts get the same scores in any store.
    ids = users.sort_values("token_hash", kind="stable")["user_id"].to_numpy()
    number = pd.Series(np.arange(len(ids)), index=ids)
    people = tables.safety_labels[tables.safety_labels["labeler_kind"] != "classifier"]
    frames = [tables.messages, tables.feedback, people]
    renumbered = [_renumbered(frame, number) for frame in frames]
    table = deployment_trust(*renumbered, config)
    table["user_id"] = ids[table["user_id"].to_numpy(dtype=int)]
    return table


def _renumbered(frame: pd.DataFrame, number: pd.Series) -> pd.DataFrame:
    """The rows of the users `number` holds, their user_id replaced by its value."""
    kept = frame[frame["user_id"].isin(number.index)]
    return kept.assign(user_id=kept["user_id"].map(number).astype(int))


def _consenting_users(tables: StoreTables) -> pd.DataFrame:
    return tables.users[tables.users["consent_training"].eq(True)]


def _consenting(tables: StoreTables) -> set:
    return set(_consenting_users(tables)["user_id"])


def build_datasets(
    engine: Engine,
    tables: StoreTables,
    labels: pd.DataFrame,
    trusted: pd.Series,
    config: CurateConfig,
    scrub: build.Scrub,
) -> list[tuple[build.Built, Path, str]]:
    """Build and write every asked-for dataset from the consenting users' data."""
    consenting = _consenting(tables)
    labels = labels[labels["user_id"].isin(consenting)]
    corrections = _corrections(tables, trusted, consenting, config.unsafe_threshold)
    safety = _people_safety_labels(tables, trusted, consenting)
    comparisons = tables.comparisons[
        tables.comparisons["user_id"].isin(consenting)
        & tables.comparisons["user_id"].map(trusted).eq(True)
    ]
    attacks = _distrusted_attacks(tables, trusted, consenting)
    needed = set(labels["message_id"]) | set(corrections["message_id"])
    needed |= set(safety["message_id"]) | set(attacks["message_id"])
    context = contexts(engine, needed)
    texts = tables.messages.set_index("message_id")["text"]
    builders = {
        "sft": lambda: build.build_sft(labels, corrections, texts, context, scrub),
        "binary": lambda: build.build_binary(labels, texts, context, scrub),
        "pairs": lambda: build.build_pairs(comparisons, corrections, texts, context, scrub),
        "rankings": lambda: build.build_rankings(comparisons, scrub),
        "safety": lambda: build.build_safety(safety, texts, context, scrub),
        "attacks": lambda: build.build_attacks(attacks, texts, context, scrub),
    }
    written = []
    for kind in config.kinds:
        built = builders[kind]()
        path, digest = build.write_dataset(built, Path(config.out))
        written.append((built, path, digest))
    return written


class TimedScrub:
    """De-identification for the builders: each distinct text scrubbed once (contexts repeat a
    conversation's earlier turns), the time spent kept for the report; a no-op when off."""

    def __init__(self, enabled: bool):
        from alignloop.curate.deid import scrub

        self.enabled, self.seconds = enabled, 0.0
        self._scrub = functools.lru_cache(maxsize=1 << 20)(scrub)

    def __call__(self, text: str) -> str:
        if not self.enabled:
            return text
        started = time.perf_counter()
        cleaned = self._scrub(text)
        self.seconds += time.perf_counter() - started
        return cleaned


def _corrections(
    tables: StoreTables, trusted: pd.Series, consenting: set, unsafe_threshold: float
) -> pd.DataFrame:
    """Trusted, consenting users' "what should I have said" answers, outside adversarial
    conversations (their human messages are never targets), leaving out answers the safety
    classifier finds unsafe (a troll who slipped through the trust scores writes "the answer
    is 42, idiot")."""
    fb = tables.feedback
    answers = fb[(fb["kind"] == "dislike") & fb["text"].fillna("").str.strip().astype(bool)]
    answers = answers[answers["p_unsafe"] < unsafe_threshold]
    answers = answers[
        answers["user_id"].map(trusted).eq(True) & answers["user_id"].isin(consenting)
    ]
    adversarial = adversarial_conversations(tables.messages, trusted, unsafe_threshold)
    conversation = answers["message_id"].map(
        tables.messages.set_index("message_id")["conversation_id"]
    )
    return answers[~conversation.isin(adversarial)]


def _people_safety_labels(tables: StoreTables, trusted: pd.Series, consenting: set):
    labels = tables.safety_labels
    people = labels[labels["labeler_kind"] != "classifier"]
    return people[people["user_id"].map(trusted).ne(False) & people["user_id"].isin(consenting)]


def _distrusted_attacks(tables: StoreTables, trusted: pd.Series, consenting: set):
    """The bot replies (message_id, user_id) in red-team conversations of distrusted,
    consenting users: a troll's safe / unsafe labels are not believed, but the turns they
    sent to break the bot are attacks all the same."""
    messages = tables.messages
    hit = (
        (messages["sender"] == "bot")
        & (messages["mode"] == "redteam")
        & messages["user_id"].map(trusted).eq(False)
        & messages["user_id"].isin(consenting)
    )
    return messages.loc[hit, ["message_id", "user_id"]]


def _start_run(engine: Engine, config: CurateConfig) -> int:
    with Session(engine) as session, session.begin():
        run = CurationRun(out=str(Path(config.out).resolve()), config=config.model_dump())
        session.add(run)
        session.flush()
        return run.id


def _finish_run(engine: Engine, run_id: int, trust: pd.DataFrame, built, out: Path, summary):
    now = datetime.now(UTC)
    components = [
        "classifier_agreement",
        "thumbs_agreement",
        "like_share_typicality",
        "flagged_share",
    ]
    rows = [
        {
            "user_id": int(r.user_id),
            "method": "deployment",
            "troll_score": float(r.troll_score),
            "n_labels": int(r.acts),
            "computed_at": now,
            "run_id": run_id,
            "components": {c: float(getattr(r, c)) for c in components},
        }
        for r in trust.itertuples()
    ]
    with Session(engine) as session, session.begin():
        for start in range(0, len(rows), 5000):
            session.execute(insert(TrustScore), rows[start : start + 5000])
        for dataset, path, digest in built:
            session.add(
                Dataset(
                    run_id=run_id,
                    kind=dataset.kind,
                    path=str(path.resolve()),
                    rows=len(dataset.rows),
                    sha256=digest,
                )
            )
        run = session.get(CurationRun, run_id)
        run.summary, run.finished_at = summary, now


def _summary(tables: StoreTables, trust: pd.DataFrame, labels: pd.DataFrame, built) -> dict:
    messages = tables.messages
    return {
        "users": len(tables.users),
        "users_consenting_to_training": int(tables.users["consent_training"].eq(True).sum()),
        "messages": len(messages),
        "messages_flagged_unsafe": int((messages["p_unsafe"] >= 0.5).sum()),
        "users_distrusted": int((~trust["trusted"]).sum()),
        "bot_replies_positive": int((labels["label"] == "positive").sum()),
        "bot_replies_negative": int((labels["label"] == "negative").sum()),
        "rows": {dataset.kind: len(dataset.rows) for dataset, _, _ in built},
    }
