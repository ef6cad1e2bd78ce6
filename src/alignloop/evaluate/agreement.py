"""How far a safety judge agrees with people's labels.

A judge classifier's "safe share" is only as good as the judge. SPEC.md §4's published figures
were people's verdicts; ours come from a classifier, so before trusting one, score it on replies
people labelled: `judge_agreement` (pure, on plain arrays) gives accuracy, the unsafe class's
precision, recall and F1, the share of safe replies it flags (false unsafe), the share of unsafe
ones it passes (missed unsafe), Cohen's kappa and the ranking's AUC.

A labels file is JSON lines, one labelled reply each:

    {"context": [{"role": "user", "content": "..."}], "reply": "...", "unsafe": true}

`context` may also be a single string (one user turn). Other keys (a note, a source) are kept
out of the way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignloop.backends.base import ChatMessage
from alignloop.errors import InvalidInput
from alignloop.safety.train import classification_metrics

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class LabelledReply:
    """A reply said after `context`, and whether a person judged it unsafe."""

    context: list[ChatMessage]
    reply: str
    unsafe: bool


def judge_agreement(
    p_unsafe: Sequence[float], unsafe: Sequence[bool], threshold: float = 0.5
) -> dict[str, Any]:
    """The judge's verdicts (P(unsafe) at or above `threshold`) against people's labels."""
    if len(p_unsafe) != len(unsafe):
        raise InvalidInput(f"{len(p_unsafe)} scores for {len(unsafe)} labels", "labels")
    flagged = [p >= threshold for p in p_unsafe]
    truth = [bool(u) for u in unsafe]
    pairs = list(zip(flagged, truth, strict=True))
    tp = sum(f and t for f, t in pairs)
    fp = sum(f and not t for f, t in pairs)
    fn = sum(t and not f for f, t in pairs)
    tn = len(pairs) - tp - fp - fn
    n = len(pairs)
    counted = classification_metrics(truth, np.asarray(p_unsafe, dtype=float), threshold)
    return {
        "n": n,
        "labelled_unsafe": tp + fn,
        "judged_unsafe": tp + fp,
        "accuracy": counted["accuracy"],
        "precision": counted["unsafe_precision"],
        "recall": counted["unsafe_recall"],
        "f1": counted["unsafe_f1"],
        "false_unsafe_rate": _ratio(fp, fp + tn),
        "missed_unsafe_rate": _ratio(fn, tp + fn),
        "kappa": cohen_kappa(tp, fp, fn, tn),
        "auc": counted["auc"],
        "labelled_safe_share": _ratio(tn + fp, n),
        "judged_safe_share": _ratio(tn + fn, n),
    }


def cohen_kappa(tp: int, fp: int, fn: int, tn: int) -> float:
    """Agreement beyond chance between two binary raters (NaN for no rows; 0 where chance
    explains everything, as when both raters say the same thing every time)."""
    n = tp + fp + fn + tn
    if n == 0:
        return float("nan")
    observed = (tp + tn) / n
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return 0.0 if chance == 1 else (observed - chance) / (1 - chance)


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else float("nan")


def read_labels(path: str | Path) -> list[LabelledReply]:
    """A labels file's rows; a bad row is refused naming its line and field."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no labels file at {path}: give a JSON-lines file", "labels")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            rows.append(_labelled(line, f"{path.name} line {number}"))
    if not rows:
        raise InvalidInput(f"{path} holds no labelled replies", "labels")
    return rows


def _labelled(line: str, where: str) -> LabelledReply:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not JSON ({exc.msg})", "labels") from exc
    if not isinstance(row, dict):
        raise InvalidInput(f"{where}: each line must be a JSON object", "labels")
    if not isinstance(row.get("unsafe"), bool):
        raise InvalidInput(f"{where}: 'unsafe' must be true or false", "unsafe")
    if not isinstance(row.get("reply"), str):
        raise InvalidInput(f"{where}: 'reply' must be the reply's text", "reply")
    return LabelledReply(_context(row.get("context"), where), row["reply"], row["unsafe"])


def _context(value: Any, where: str) -> list[ChatMessage]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    fix = "give the user's turn as a string or a list of {role, content} messages"
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: 'context' is missing: {fix}", "context")
    for message in value:
        if not (
            isinstance(message, dict)
            and message.get("role") in ROLES
            and isinstance(message.get("content"), str)
        ):
            raise InvalidInput(
                f"{where}: 'context' has a bad message {message!r}: {fix}", "context"
            )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def score_labels(judge, labels: Sequence[LabelledReply], threshold: float = 0.5) -> dict:
    """A judge classifier (`SafetyClassifier`) scored on labelled replies."""
    scores = judge.score_batch([(row.context, row.reply) for row in labels])
    return judge_agreement([float(s) for s in scores], [row.unsafe for row in labels], threshold)
