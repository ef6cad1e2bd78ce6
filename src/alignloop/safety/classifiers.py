"""Safety classifiers behind one interface: `score(context, utterance) -> P(unsafe)`, and
`score_batch(pairs)` for many (context, utterance) pairs at once.

Three kinds, interchangeable wherever a `SafetyClassifier` is taken: the profanity model
(here), a logistic head on MiniLM sentence embeddings (`embedding.py`) and MiniLM fine-tuned as
a text-pair classifier (`finetune.py`). A trained classifier is a folder with a manifest,
`safety_classifier.json`; `load_classifier` reads any of them back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from alignloop.backends.base import ChatMessage
from alignloop.errors import AlignloopError, InvalidInput, NotFound

if TYPE_CHECKING:
    import numpy as np

Pair = tuple[Sequence[ChatMessage], str]
"""(context, utterance): the conversation so far and the text judged after it."""

OnProgress = Callable[[str, int, int, dict[str, float]], None]
"""Called as (stage, done, total, metrics) while a classifier trains or scores."""

MANIFEST = "safety_classifier.json"
MANIFEST_FORMAT = 1


@runtime_checkable
class SafetyClassifier(Protocol):
    name: str

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        """Probability that `utterance`, said after `context`, is unsafe."""
        ...

    def score_batch(self, pairs: Sequence[Pair]) -> np.ndarray:
        """P(unsafe) of each (context, utterance) pair, in order (float array)."""
        ...


def context_text(context: Sequence[ChatMessage], turns: int) -> str:
    """The latest `turns` messages of a context as one text, one message per line."""
    if turns <= 0:
        return ""
    return "\n".join(m["content"] for m in context[-turns:])


class ProfanityClassifier:
    """The `alt-profanity-check` model: a linear model on the utterance alone (profanity only).

    The package's model is a CalibratedClassifierCV over LinearSVC folds with sigmoid
    calibration; for two classes its probability is exactly
    mean_i expit(-(a_i * (w_i . x + b_i) + c_i)). Evaluating that with one sparse product
    gives the same numbers as `predict_prob` about six times faster (it runs on every reply).
    """

    name = "alt-profanity-check"
    kind = "profanity"

    def __init__(self) -> None:
        import numpy as np
        from profanity_check import profanity_check as package

        folds = package.model.calibrated_classifiers_
        self._vectorizer = package.vectorizer
        self._weights = np.stack([f.estimator.coef_.ravel() for f in folds], axis=1)
        self._bias = np.array([f.estimator.intercept_[0] for f in folds])
        self._slope = np.array([f.calibrators[0].a_ for f in folds])
        self._offset = np.array([f.calibrators[0].b_ for f in folds])

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        return float(self.score_texts([utterance])[0])

    def score_batch(self, pairs: Sequence[Pair]) -> np.ndarray:
        return self.score_texts([utterance for _, utterance in pairs])

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        from scipy.special import expit

        margins = self._vectorizer.transform(list(texts)) @ self._weights + self._bias
        return expit(-(self._slope * margins + self._offset)).mean(axis=1)

    def save(self, folder: Path) -> dict[str, Any]:
        """Nothing to write beyond the manifest: the model comes with its package."""
        from importlib.metadata import version

        return {"package": "alt-profanity-check", "package_version": version("alt-profanity-check")}

    @classmethod
    def from_folder(cls, folder: Path, manifest: dict[str, Any]) -> ProfanityClassifier:
        classifier = cls()
        classifier.name = manifest.get("name", cls.name)
        return classifier


CLASSIFIERS: dict[str, Callable[[], SafetyClassifier]] = {"profanity": ProfanityClassifier}
REPLY_JUDGES = ("refusal",)
"""Safety judges of replies to harmful requests only (`safety.compliance`): a promotion's
`safety_judge` may be one, a classifier that scores every message (curation, the gate) not."""


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, **manifest}, indent=2))


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """A classifier folder's manifest, or None where `folder` holds none."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _loader(kind: str):
    if kind == "profanity":
        return ProfanityClassifier.from_folder
    if kind == "embedding":
        from alignloop.safety.embedding import EmbeddingClassifier

        return EmbeddingClassifier.from_folder
    if kind == "finetune":
        from alignloop.safety.finetune import FinetunedClassifier

        return FinetunedClassifier.from_folder
    raise InvalidInput(f"unknown classifier kind {kind!r} in the manifest", "kind")


def load_classifier(source: str | Path, db: str | None = None) -> SafetyClassifier:
    """A classifier from a folder `alignloop safety train` wrote, a built-in name
    ('profanity'), or (with `db`) the name of a classifier registered in the store or
    'promoted' (the last promoted red-team round's)."""
    found = classifier_source(str(source), db)
    if found in CLASSIFIERS:
        return CLASSIFIERS[found]()
    manifest = read_manifest(found) or {}
    return _loader(manifest.get("kind", ""))(Path(found), manifest)


def load_safety_judge(source: str | Path, db: str | None = None) -> SafetyClassifier:
    """A judge of the unsafe rate: 'refusal' (`safety.compliance`, replies to adversarial
    prompts only: see its `scope`) or any classifier `load_classifier` reads."""
    if str(source) in REPLY_JUDGES:
        from alignloop.safety.compliance import ComplianceJudge

        return ComplianceJudge()
    return load_classifier(source, db)


def judge_source(spec: str, db: str | None = None) -> str:
    """`classifier_source` for a safety judge, which may also be one of `REPLY_JUDGES`."""
    return spec if spec in REPLY_JUDGES else classifier_source(spec, db)


def checked_judge_source(field: str, spec: str, db: str | None = None) -> str:
    """`judge_source` for a config's validator: the error names the config field."""
    return spec if spec in REPLY_JUDGES else checked_source(field, spec, db)


def classifier_source(spec: str, db: str | None = None) -> str:
    """The folder (or built-in name) a classifier spec stands for; NotFound naming the fix."""
    if Path(spec).is_dir() and read_manifest(spec) is not None:
        return spec
    if spec in CLASSIFIERS:
        return spec
    if spec in REPLY_JUDGES:
        raise InvalidInput(
            f"{spec!r} judges replies to harmful requests only (a promotion's safety_judge), "
            f"not every message; name a classifier: one of {', '.join(CLASSIFIERS)} or a folder "
            "`alignloop safety train` wrote",
            "classifier",
        )
    if db is not None and spec == "promoted":
        return _promoted(db)
    if db is not None and not Path(spec).exists():
        return registered_path(db, spec)
    raise NotFound(
        f"{spec} is neither a classifier folder (with {MANIFEST}), one of "
        f"{', '.join(CLASSIFIERS)}, nor a classifier registered in the store; train one with "
        "`alignloop safety train`",
        "classifier",
    )


def checked_source(field: str, spec: str, db: str | None = None) -> str:
    """`classifier_source` for a config's validator: the error names the config field."""
    try:
        return classifier_source(spec, db)
    except AlignloopError as exc:
        raise ValueError(f"{field}: {exc}") from exc


def _promoted(db: str) -> str:
    from alignloop.safety.redteam import promoted_classifier

    folder = _in_store(db, lambda: promoted_classifier(db))
    if folder is None:
        raise NotFound(
            f"no red-team round in {db} has promoted a classifier yet; run "
            "`alignloop redteam round` or name a classifier folder",
            "classifier",
        )
    return folder


def _in_store(db: str, read: Callable[[], Any]) -> Any:
    """`read()` against the store at `db`, which must exist and be migrated."""
    from sqlalchemy.exc import SQLAlchemyError

    if "://" not in db and not Path(db).is_file():
        raise NotFound(f"the store {db} does not exist; start it with `alignloop serve`", "db")
    try:
        return read()
    except SQLAlchemyError as exc:
        raise NotFound(
            f"cannot read the model registry in {db} ({type(exc).__name__}); run "
            "`alignloop db upgrade`",
            "db",
        ) from exc


def registered_path(db: str, name: str) -> str:
    """The folder of the safety classifier registered as `name` in the store at `db`."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.store.db import make_engine
    from alignloop.store.models import ModelVersion

    def read() -> ModelVersion | None:
        with Session(make_engine(db)) as session:
            return session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()

    row = _in_store(db, read)
    if row is None or not (row.algorithm or "").startswith("safety-") or not row.path:
        raise NotFound(
            f"no safety classifier named {name!r} in {db}; name a classifier folder, one of "
            f"{', '.join(CLASSIFIERS)}, or register one with `alignloop safety train --db`",
            "classifier",
        )
    return row.path
