"""Dataset builders: labelled store data -> versioned datasets in the trainers' formats.

Each builder returns rows (the format `alignloop train <algo> --data` reads) and, per row, its
provenance: the message ids and user ids it came from. Only users who consented to training
appear (users who asked for deletion were never loaded). Written by `write_dataset` as
`<kind>.jsonl` plus `<kind>.provenance.parquet`.

- sft: positive bot replies in their context; trusted users' "what should I have said"
  answers (outside adversarial conversations) as demonstrations;
- binary: positive and negative replies (CRINGE's positives and negatives, thumbs for a reward
  model);
- pairs: regenerate and compare votes that pick one reply, and a trusted correction over the
  reply it corrects;
- rankings: full K-way rankings from compare votes;
- safety: people's red-team labels (trusted users) on bot replies, in context;
- attacks: the bot replies, in context, of distrusted users' red-team conversations: their
  labels are not believed, but what they sent was an attack (baked-in safety answers it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

KINDS = ("sft", "binary", "pairs", "rankings", "safety", "attacks")
Scrub = Callable[[str], str]


@dataclass
class Built:
    kind: str
    rows: list[dict[str, Any]]
    provenance: list[dict[str, list[int]]]  # per row: message_ids, user_ids

    def add(self, row: dict[str, Any], message_ids: list[int], user_ids: list[int]) -> None:
        self.rows.append(row)
        self.provenance.append({"message_ids": message_ids, "user_ids": user_ids})


def _clean_messages(context: list[dict], scrub: Scrub) -> list[dict]:
    return [{"role": m["role"], "content": scrub(m["content"])} for m in context or []]


def build_sft(
    labels: pd.DataFrame, corrections: pd.DataFrame, texts: pd.Series, contexts, scrub: Scrub
) -> Built:
    built = Built("sft", [], [])
    for row in labels[labels["label"] == "positive"].itertuples():
        reply = {"role": "assistant", "content": scrub(texts[row.message_id])}
        messages = [*_clean_messages(contexts[row.message_id], scrub), reply]
        built.add({"messages": messages}, [row.message_id], [row.user_id])
    for row in corrections.itertuples():
        answer = {"role": "assistant", "content": scrub(row.text)}
        messages = [*_clean_messages(contexts[row.message_id], scrub), answer]
        built.add({"messages": messages}, [row.message_id], [row.user_id])
    return built


def build_binary(labels: pd.DataFrame, texts: pd.Series, contexts, scrub: Scrub) -> Built:
    built = Built("binary", [], [])
    for row in labels.itertuples():
        built.add(
            {
                "prompt": _clean_messages(contexts[row.message_id], scrub),
                "completion": scrub(texts[row.message_id]),
                "label": row.label == "positive",
            },
            [row.message_id],
            [row.user_id],
        )
    return built


def build_pairs(
    comparisons: pd.DataFrame, corrections: pd.DataFrame, texts: pd.Series, contexts, scrub
) -> Built:
    built = Built("pairs", [], [])
    for row in comparisons.itertuples():
        order = _order(row)
        if order is None:
            continue
        replies = [r["text"] for r in row.responses]
        ids = [r.get("message_id") for r in row.responses if r.get("message_id") is not None]
        for loser in order[1:]:
            built.add(
                {
                    "prompt": _clean_messages(row.context, scrub),
                    "chosen": scrub(replies[order[0]]),
                    "rejected": scrub(replies[loser]),
                },
                ids,
                [row.user_id],
            )
    for row in corrections.itertuples():
        built.add(
            {
                "prompt": _clean_messages(contexts[row.message_id], scrub),
                "chosen": scrub(row.text),
                "rejected": scrub(texts[row.message_id]),
            },
            [row.message_id],
            [row.user_id],
        )
    return built


def _order(comparison) -> list[int] | None:
    """The winner first, then the rest (a choice), or the full ranking; None for tie/both bad."""
    if comparison.outcome == "ranking":
        return list(comparison.ranking)
    if comparison.outcome == "choice":
        k, choice = len(comparison.responses), int(comparison.choice)  # a float in pandas
        return [choice, *(i for i in range(k) if i != choice)]
    return None


def build_rankings(comparisons: pd.DataFrame, scrub: Scrub) -> Built:
    built = Built("rankings", [], [])
    for row in comparisons[comparisons["outcome"] == "ranking"].itertuples():
        ids = [r.get("message_id") for r in row.responses if r.get("message_id") is not None]
        built.add(
            {
                "prompt": _clean_messages(row.context, scrub),
                "responses": [scrub(r["text"]) for r in row.responses],
                "ranking": list(row.ranking),
            },
            ids,
            [row.user_id],
        )
    return built


def build_safety(safety: pd.DataFrame, texts: pd.Series, contexts, scrub: Scrub) -> Built:
    return _replies_in_context("safety", safety, texts, contexts, scrub, labelled=True)


def build_attacks(attacks: pd.DataFrame, texts: pd.Series, contexts, scrub: Scrub) -> Built:
    return _replies_in_context("attacks", attacks, texts, contexts, scrub, labelled=False)


def _replies_in_context(
    kind: str, frame: pd.DataFrame, texts: pd.Series, contexts, scrub: Scrub, labelled: bool
) -> Built:
    """One row per bot reply of `frame` (message_id, user_id, and label where `labelled`): its
    context, the reply and the label."""
    built = Built(kind, [], [])
    for row in frame.itertuples():
        context = _clean_messages(contexts[row.message_id], scrub)
        item = {"context": context, "response": scrub(texts[row.message_id])}
        if labelled:
            item["label"] = row.label
        built.add(item, [row.message_id], [row.user_id])
    return built


def write_dataset(built: Built, folder: Path) -> tuple[Path, str]:
    """`<kind>.jsonl` and `<kind>.provenance.parquet` in `folder`; returns the path and the
    rows' sha256 (the dataset's version)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    path = folder / f"{built.kind}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in built.rows:
            line = json.dumps(row, ensure_ascii=False) + "\n"
            digest.update(line.encode())
            handle.write(line)
    provenance = pd.DataFrame(built.provenance, columns=["message_ids", "user_ids"])
    provenance.insert(0, "row", range(len(provenance)))
    provenance.to_parquet(folder / f"{built.kind}.provenance.parquet", index=False)
    return path, digest.hexdigest()
