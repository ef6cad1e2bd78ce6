"""A round's training rows: curation reads the whole store (trust needs every user's history),
then a round keeps the rows whose messages all lie in its message range (new since the last
round), the rows the deployed version has not learned from (since the round that promoted it:
a round that was not promoted leaves its rows to the next candidate) and, for the reward model,
every row up to the end of its range."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# A round's row sets and their files' suffixes (<kind><suffix>.jsonl).
PARTS = {"new": "", "unlearned": "-unlearned", "cumulative": "-all"}


@dataclass(frozen=True)
class RoundRows:
    kind: str
    new: Path  # rows whose messages all came in this round
    unlearned: Path  # rows whose messages all came after the deployed version's last round
    cumulative: Path  # rows of every round so far
    new_count: int
    unlearned_count: int
    cumulative_count: int

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "new": str(self.new),
            "unlearned": str(self.unlearned),
            "cumulative": str(self.cumulative),
            "new_count": self.new_count,
            "unlearned_count": self.unlearned_count,
            "cumulative_count": self.cumulative_count,
        }


def _read_rows(curated: Path, kind: str) -> tuple[list[str], pd.DataFrame]:
    path = curated / f"{kind}.jsonl"
    if not path.exists():
        return [], pd.DataFrame({"row": [], "message_ids": []})
    lines = path.read_text(encoding="utf-8").splitlines()
    provenance = pd.read_parquet(curated / f"{kind}.provenance.parquet")
    return lines, provenance


def split_round_rows(
    curated: Path, kind: str, since: int, first: int, last: int, out: Path
) -> RoundRows:
    """Write `<kind>.jsonl` (rows of messages first..last), `<kind>-unlearned.jsonl` (rows of
    messages since..last; `since` <= `first`) and `<kind>-all.jsonl` (rows of messages up to
    last) into `out`."""
    lines, provenance = _read_rows(curated, kind)
    lowest = provenance["message_ids"].map(lambda ids: min(ids, default=0))
    highest = provenance["message_ids"].map(lambda ids: max(ids, default=0))
    in_round = provenance["row"][(lowest >= first) & (highest <= last)].tolist()
    unlearned = provenance["row"][(lowest >= since) & (highest <= last)].tolist()
    so_far = provenance["row"][highest <= last].tolist()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{kind}{suffix}.jsonl" for suffix in PARTS.values()]
    for path, rows in zip(paths, (in_round, unlearned, so_far), strict=True):
        _write_lines(path, [lines[i] for i in rows])
    return RoundRows(kind, *paths, len(in_round), len(unlearned), len(so_far))


def with_demonstrations(binary: Path, sft: Path, out: Path) -> int:
    """Binary rows plus the SFT rows (people's corrections, liked replies) as liked rows, each
    (prompt, completion) once: CRINGE's positives are what people liked and what they said the
    bot should have said. Returns the rows written."""
    seen, lines = set(), []
    for line in binary.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        seen.add(json.dumps([row["prompt"], row["completion"]]))
        lines.append(line)
    for line in sft.read_text(encoding="utf-8").splitlines() if sft.exists() else []:
        messages = json.loads(line)["messages"]
        row = {"prompt": messages[:-1], "completion": messages[-1]["content"], "label": True}
        key = json.dumps([row["prompt"], row["completion"]])
        if key not in seen:
            seen.add(key)
            lines.append(json.dumps(row, ensure_ascii=False))
    _write_lines(out, lines)
    return len(lines)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def label_counts(path: Path) -> dict[str, int]:
    """Liked and disliked rows of a binary dataset."""
    counts = {"liked": 0, "disliked": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        counts["liked" if json.loads(line).get("label") else "disliked"] += 1
    return counts
