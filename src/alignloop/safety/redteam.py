"""Bot-Adversarial-Dialogue rounds (SPEC.md §4): people chat with the bot in red-team mode and
label its replies safe or unsafe; each round retrains the safety classifier on those labels and
replaces the gate's classifier only if it does better on labels it has not seen.

A round:
1. gathers the person labels ('user' and 'crowd') on bot replies of red-team conversations that
   arrived since the last round, from users who consented to training and did not ask for
   deletion. Several people's labels on one reply are put to a majority vote (a tie counts
   unsafe): the "verified by others" step;
2. holds out the labels of a share of the conversations, chosen by a seeded hash of the
   conversation id, so a conversation is on the same side in every round and never on both;
3. trains a classifier (`alignloop safety train`'s code) on the base data plus the labels of
   every red-team round so far (each `redteam_weight` times), held-out conversations left out.
   Earlier rounds' labels are read again from the store rather than from a file, so a user who
   asked for deletion since then drops out of every later round;
4. compares the gate's classifier (the last promoted round's, else `current`) with the new one
   on this round's held-out labels (plus `eval_data`) by unsafe-F1 (or, with `compare_by`
   'auc', by its ranking), and promotes the new one only if it gains at least `min_gain`
   (strictly more when `min_gain` is 0);
5. records the round (table `redteam_rounds`) and registers the classifier as
   'redteam-round-<n>', in one transaction; the classifier folder is `<out>/round-<n>/`.

A failed round writes nothing: no row, no model version, no folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alignloop.curate.load import contexts, kept_users
from alignloop.errors import Conflict, InvalidInput
from alignloop.safety.classifiers import (
    OnProgress,
    load_classifier,
    read_manifest,
    write_manifest,
)
from alignloop.safety.data import SafetyExample, load_safety_examples
from alignloop.safety.redteam_config import RedteamRoundConfig
from alignloop.safety.train import (
    TrainedClassifier,
    check_out_free,
    evaluate,
    train_classifier,
    trained_version,
)
from alignloop.store.db import make_engine, upgrade
from alignloop.store.models import (
    Conversation,
    Message,
    ModelVersion,
    RedteamRound,
    SafetyLabel,
    User,
)
from alignloop.store.repository import add_trained_version
from alignloop.store.versions import check_name_free

PERSON_KINDS = ("user", "crowd")


@dataclass(frozen=True)
class LabelledReply:
    """A red-team bot reply with its people's verdict (`unsafe`: the majority, ties unsafe)."""

    message_id: int
    conversation_id: int
    text: str
    votes: int
    unsafe_votes: int
    new: bool  # labelled (at least once) since the last round

    @property
    def unsafe(self) -> bool:
        return 2 * self.unsafe_votes >= self.votes


@dataclass
class Gathered:
    """Every usable red-team label up to `last_label_id`, one entry per labelled reply."""

    replies: list[LabelledReply]
    new_labels: int  # label rows since the last round
    first_label_id: int | None
    last_label_id: int | None

    @property
    def new(self) -> list[LabelledReply]:
        return [r for r in self.replies if r.new]

    @property
    def several_labels(self) -> int:
        """New replies that more than one person labelled."""
        return sum(r.votes > 1 for r in self.new)

    @property
    def split_votes(self) -> int:
        """New replies whose labellers disagreed (decided by the majority)."""
        return sum(0 < r.unsafe_votes < r.votes for r in self.new)


@dataclass
class RoundResult:
    number: int
    folder: Path
    version_id: int
    promoted: bool
    previous_classifier: str
    gathered: Gathered
    train_rows: int  # red-team rows trained on, every round so far
    base_rows: int
    holdout: int  # this round's held-out red-team replies
    eval_rows: int  # rows the comparison used: the held-out replies plus eval_data
    old: dict[str, float]
    new: dict[str, float]


def _consenting_users() -> Select:
    """Users whose data may train models: consented, and not asked for deletion."""
    return select(User.id).where(User.id.in_(kept_users()), User.consent_training.is_(True))


def _usable_labels() -> Select:
    """Person labels on red-team bot replies whose conversation's user consents; a labeller who
    is a known user (crowd workers may be) must consent too."""
    withheld = select(User.pseudonym).where(User.id.not_in(_consenting_users()))
    return (
        select(
            SafetyLabel.id,
            SafetyLabel.message_id,
            SafetyLabel.label,
            Message.conversation_id,
            Message.text,
        )
        .join(Message, Message.id == SafetyLabel.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.mode == "redteam",
            Message.sender == "bot",
            SafetyLabel.labeler_kind.in_(PERSON_KINDS),
            Conversation.user_id.in_(_consenting_users()),
            SafetyLabel.labeler.not_in(withheld),
        )
        .order_by(SafetyLabel.id)
    )


def gather_labels(engine: Engine, after_id: int = 0) -> Gathered:
    """The usable red-team labels, all of them (earlier rounds' too: training is cumulative);
    replies labelled since label id `after_id` are marked new. One read, so labels written
    meanwhile wait for the next round whole."""
    with engine.connect() as conn:
        rows = conn.execute(_usable_labels()).all()
    votes: dict[int, list[bool]] = defaultdict(list)
    first: dict[int, Any] = {}
    newest: dict[int, int] = {}
    for row in rows:
        votes[row.message_id].append(row.label == "unsafe")
        first.setdefault(row.message_id, row)
        newest[row.message_id] = row.id
    new_ids = [row.id for row in rows if row.id > after_id]
    replies = [
        LabelledReply(
            message_id,
            first[message_id].conversation_id,
            first[message_id].text,
            len(verdicts),
            sum(verdicts),
            newest[message_id] > after_id,
        )
        for message_id, verdicts in votes.items()
    ]
    return Gathered(
        replies,
        len(new_ids),
        min(new_ids, default=None),
        max(new_ids, default=None),
    )


def held_out(conversation_id: int, seed: int, share: float) -> bool:
    """Whether a conversation's labels are held out: a seeded hash, so the same conversation
    falls on the same side in every round (as long as seed and share stay the same)."""
    digest = hashlib.sha256(f"redteam:{seed}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split(
    replies: Iterable[LabelledReply], seed: int, share: float
) -> tuple[list[LabelledReply], list[LabelledReply]]:
    """(train, held out) by conversation."""
    train: list[LabelledReply] = []
    holdout: list[LabelledReply] = []
    for reply in replies:
        (holdout if held_out(reply.conversation_id, seed, share) else train).append(reply)
    return train, holdout


def to_examples(engine: Engine, replies: Sequence[LabelledReply]) -> list[SafetyExample]:
    """Each reply with what the bot saw before it (its context snapshot) and its verdict."""
    snapshots = contexts(engine, [r.message_id for r in replies])
    return [
        SafetyExample(
            [
                {"role": m["role"], "content": m["content"]}
                for m in snapshots.get(r.message_id) or []
            ],
            r.text,
            r.unsafe,
        )
        for r in replies
    ]


def should_promote(old: float | None, new: float | None, min_gain: float) -> bool:
    """A tie keeps the classifier already serving: with min_gain 0 the new one must be better.
    An undefined measure (None: an AUC on held-out labels of one kind) promotes nothing."""
    if old is None or new is None:
        return False
    return new > old if min_gain == 0 else new >= old + min_gain


def _has_rounds_table(engine: Engine) -> bool:
    return inspect(engine).has_table(RedteamRound.__tablename__)


def _promoted_path(engine: Engine) -> str | None:
    with Session(engine) as session:
        return session.scalar(
            select(ModelVersion.path)
            .join(RedteamRound, RedteamRound.classifier_version_id == ModelVersion.id)
            .where(RedteamRound.promoted.is_(True))
            .order_by(RedteamRound.number.desc())
            .limit(1)
        )


def promoted_classifier(db: str) -> str | None:
    """The classifier folder of the last promoted red-team round; None while none was (or the
    store predates red-team rounds). What `--safety-gate promoted` serves."""
    engine = make_engine(db)
    try:
        return _promoted_path(engine) if _has_rounds_table(engine) else None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class LastRound:
    number: int
    last_label_id: int


def _last_round(engine: Engine) -> LastRound | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(RedteamRound.number, RedteamRound.last_label_id)
            .order_by(RedteamRound.number.desc())
            .limit(1)
        ).first()
    return LastRound(row.number, row.last_label_id) if row else None


def _read_rows(path: str, field: str, skip_bad: bool = False) -> list[SafetyExample]:
    """Labelled rows of a config option's file; errors name that option."""
    if not Path(path).is_file() and not Path(path).is_dir():
        raise InvalidInput(
            f"{field} {path} does not exist; give a file of labelled safety rows "
            "(context, response, label), e.g. data/diasafety/train.json",
            field,
        )
    try:
        return load_safety_examples(path, skip_bad=skip_bad)
    except InvalidInput as err:
        raise InvalidInput(f"{field}: {err.message}", field) from err


def _write_rows(path: Path, examples: Iterable[SafetyExample]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for e in examples:
            row = {"context": e.context, "response": e.response, "label": _label(e.label)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _label(unsafe: bool | None) -> str:
    return "unsafe" if unsafe else "safe"


def _train(
    config: RedteamRoundConfig,
    examples: Sequence[SafetyExample],
    folder: Path,
    name: str,
    parent: str,
    on_progress: OnProgress | None,
) -> TrainedClassifier:
    """`alignloop safety train` on the round's rows, through a scratch file it reads back
    (removed afterwards: red-team text stays in the store, not in the round's folder)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    data = folder.parent / f".{folder.name}.train-{os.getpid()}.jsonl"
    try:
        _write_rows(data, examples)
        return train_classifier(
            config.train_config(str(data), str(folder), name, parent), on_progress
        )
    finally:
        data.unlink(missing_ok=True)


def _describe_in_manifest(
    folder: Path, config: RedteamRoundConfig, number: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """Point the manifest at the round's real sources (not the scratch file it trained from)
    and add the held-out comparison; returns the manifest as registered."""
    manifest = read_manifest(folder) or {}
    manifest["data"] = str(Path(config.base_data).resolve())
    manifest["config"] = {**manifest["config"], "data": manifest["data"]}
    manifest["redteam"] = {"round": number, **summary}
    new = summary["new"]
    manifest["metrics"] = {**manifest["metrics"], **{f"holdout_{k}": v for k, v in new.items()}}
    manifest.pop("format", None)
    write_manifest(folder, manifest)
    return manifest


def _record(
    engine: Engine,
    manifest: dict[str, Any],
    folder: Path,
    round_row: RedteamRound,
) -> int:
    """Register the classifier and write the round in one transaction; returns the version id."""
    version = trained_version(manifest, folder)
    number = round_row.number
    try:
        with Session(engine) as session, session.begin():
            version_id = add_trained_version(session, version)
            round_row.classifier_version_id = version_id
            session.add(round_row)
    except IntegrityError as err:
        raise Conflict(
            f"another red-team round {number} was recorded meanwhile; run again", "db"
        ) from err
    return version_id


def _no_new_labels(config: RedteamRoundConfig, last: LastRound | None) -> InvalidInput:
    since = f"since round {last.number} (label ids above {last.last_label_id})" if last else ""
    return InvalidInput(
        f"no new red-team labels in {config.db} {since}".rstrip()
        + ": red-teamers must label bot replies safe or unsafe (in /redteam) first",
        "db",
    )


def run_round(config: RedteamRoundConfig, on_progress: OnProgress | None = None) -> RoundResult:
    """One red-team round (see the module's docstring). Inputs are checked and the old
    classifier loaded before training; any failure leaves the store and `out` as they were."""
    engine = make_engine(config.db)
    try:
        upgrade(engine)
        return _run(engine, config, on_progress)
    finally:
        engine.dispose()


def _progress(on_progress: OnProgress | None, stage: str) -> None:
    if on_progress:
        on_progress(stage, 0, 0, {})


def _run(engine: Engine, config: RedteamRoundConfig, on_progress: OnProgress | None) -> RoundResult:
    base = _read_rows(config.base_data, "base_data", config.skip_bad_rows)
    extra = _read_rows(config.eval_data, "eval_data") if config.eval_data else []
    last = _last_round(engine)
    number = last.number + 1 if last else 1
    folder = Path(config.out) / f"round-{number}"
    name = f"redteam-round-{number}"
    check_out_free(folder)
    check_name_free(config.db, name)

    _progress(on_progress, "gathering red-team labels")
    gathered = gather_labels(engine, last.last_label_id if last else 0)
    if not gathered.new:
        raise _no_new_labels(config, last)
    train_part, holdout_part = split(gathered.replies, config.seed, config.holdout_share)
    holdout_part = [r for r in holdout_part if r.new]  # earlier rounds' were compared already
    if not holdout_part and not extra:
        raise InvalidInput(
            f"none of the {len(gathered.new)} new red-team labels fell in the held-out share "
            f"({config.holdout_share}): raise holdout_share, give eval_data, or wait for more "
            "red-team conversations",
            "holdout_share",
        )
    compared_on = to_examples(engine, holdout_part) + extra

    promoted_before = _promoted_path(engine)
    previous = promoted_before or config.current
    _progress(on_progress, f"evaluating {previous}")
    old = evaluate(load_classifier(previous, config.db), compared_on, config.threshold)

    redteam_rows = to_examples(engine, train_part)
    weighted = redteam_rows * config.redteam_weight
    trained = _train(config, base + weighted, folder, name, previous, on_progress)
    try:
        _progress(on_progress, f"evaluating {name}")
        new = evaluate(trained.classifier, compared_on, config.threshold)
        promoted = should_promote(old[config.compare_by], new[config.compare_by], config.min_gain)
        summary = {
            "labels": gathered.new_labels,
            "replies": len(gathered.new),
            "several_labels": gathered.several_labels,
            "split_votes": gathered.split_votes,
            "train_redteam_rows": len(redteam_rows),
            "redteam_weight": config.redteam_weight,
            "train_base_rows": len(base),
            "holdout": len(holdout_part),
            "eval_data_rows": len(extra),
            "old": old,
            "new": new,
        }
        manifest = _describe_in_manifest(
            folder, config, number, {**summary, "compared_with": previous, "promoted": promoted}
        )
        row = RedteamRound(
            number=number,
            first_label_id=gathered.first_label_id,
            last_label_id=gathered.last_label_id,
            labels=gathered.new_labels,
            holdout=len(holdout_part),
            previous_classifier=previous,
            metrics=summary,
            promoted=promoted,
            config=config.model_dump(mode="json"),
        )
        version_id = _record(engine, manifest, folder, row)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # ours: training created it
        raise
    return RoundResult(
        number=number,
        folder=folder,
        version_id=version_id,
        promoted=promoted,
        previous_classifier=previous,
        gathered=gathered,
        train_rows=len(redteam_rows),
        base_rows=len(base),
        holdout=len(holdout_part),
        eval_rows=len(compared_on),
        old=old,
        new=new,
    )
