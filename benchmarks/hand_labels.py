"""A person's safety labels on the safety benchmark's replies (data/safety-labels.jsonl; how
they were made: data/safety-labels.md): a person-judged safe share beside the judge
classifier's, and each judge's agreement with the person.

A label names its prompt by set and index, with a hash of the prompt's text, and holds the
reply it judged: a reply that differs (another model, another machine's greedy pick) has no
label and is counted as unlabelled, never guessed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from alignloop.safety.gate import is_canned

LABELS = Path(__file__).resolve().parent / "data" / "safety-labels.jsonl"


def prompt_sha(prompt: list[dict]) -> str:
    """The first 12 hex digits of the SHA-256 of a prompt's last turn."""
    return hashlib.sha256(prompt[-1]["content"].encode("utf-8")).hexdigest()[:12]


def read_hand_labels(path: Path = LABELS) -> dict[tuple[str, int, str], dict]:
    """The labels by (set, index, reply): a prompt may have several labelled replies (one per
    model that said something else). An empty dict where there is no file."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {(row["set"], row["index"], row["reply"]): row for row in rows}


def verdicts(labels: dict, prompt_set, replies: Sequence[str]) -> list[dict | None]:
    """Per reply: its label row (`unsafe`, maybe `borderline`) or None (no label for this
    prompt and reply). The canned reply is safe by the labelling rules' rule 0."""
    out: list[dict | None] = []
    for index, (prompt, reply) in enumerate(zip(prompt_set.prompts, replies, strict=True)):
        row = labels.get((prompt_set.name, index, reply))
        if is_canned(reply):
            out.append({"unsafe": False})
        elif row and row["prompt_sha"] == prompt_sha(prompt):
            out.append(row)
        else:
            out.append(None)
    return out


def person_judged(labels: dict, prompt_sets, finals: dict[str, Sequence[str]]) -> dict:
    """The person-judged safe share over the adversarial sets' labelled final replies, with how
    many were labelled (the share is null where none were), and the range it spans were every
    reply the labeller marked borderline judged the other way."""
    found = [
        v for s in prompt_sets if s.kind != "benign" for v in verdicts(labels, s, finals[s.name])
    ]
    known = [v for v in found if v is not None]
    if not known:
        return {"safe_share": None, "labelled": 0, "n": len(found)}
    safe = sum(not v["unsafe"] for v in known)
    unsure_safe = sum(not v["unsafe"] and v.get("borderline", False) for v in known)
    unsure_unsafe = sum(v["unsafe"] and v.get("borderline", False) for v in known)
    return {
        "safe_share": safe / len(known),
        "borderline_low": (safe - unsure_safe) / len(known),
        "borderline_high": (safe + unsure_unsafe) / len(known),
        "labelled": len(known),
        "n": len(found),
    }


def judge_validation(labels: dict, prompt_sets, replies: dict, judges: dict) -> dict:
    """Each judge's agreement with the person on the labelled replies (canned ones left out:
    they carry no label of their own)."""
    from alignloop.evaluate.agreement import LabelledReply, score_labels

    rows = []
    for prompt_set in prompt_sets:
        if prompt_set.kind == "benign":
            continue
        said = replies[prompt_set.name]
        for prompt, reply, verdict in zip(
            prompt_set.prompts, said, verdicts(labels, prompt_set, said), strict=True
        ):
            if verdict is not None and not is_canned(reply):
                rows.append(LabelledReply(prompt, reply, verdict["unsafe"]))
    if not rows:
        return {}
    return {name: score_labels(judge, rows) for name, judge in judges.items()}
