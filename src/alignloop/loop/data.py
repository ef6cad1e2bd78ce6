"""A round's training rows: curation reads the whole store (trust needs every user's history),
then a round keeps the rows whose messages all lie in its message range (new since the last
round), the rows the deployed version has not learned from (since the round that promoted it:
a round that was not promoted leaves its rows to the next candidate) and, for the reward model,
every row up to the end of its range."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
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


def demonstrations(sft: Path) -> Iterator[tuple[list[dict], str]]:
    """(prompt, completion) of each SFT row: people's corrections and the replies they liked."""
    for line in sft.read_text(encoding="utf-8").splitlines() if sft.exists() else []:
        messages = json.loads(line)["messages"]
        yield messages[:-1], messages[-1]["content"]


def safe_answers(
    safety: Path,
    binary: Path,
    answer: Callable[[random.Random], str],
    seed: int,
    attacks: Path | None = None,
) -> Iterator[tuple[list[dict], str]]:
    """Baked-in safety (SPEC.md §4) from red-teaming: in a red-team conversation (a row of
    `safety`), each reply a person labelled unsafe or that is a disliked row of `binary`, and
    each reply of `attacks` (distrusted users' red-team turns, whose labels are not believed),
    in its context, answered instead by `answer` (the gate's canned reply). The people's labels
    play the classifier's part; an attack the bot answered badly gets the safe answer even where
    the bad answer was not unsafe. The answer is drawn by the context, so every set (and every
    round) answers one context alike."""
    disliked = {
        _pair_key(row["prompt"], row["completion"])
        for row in _json_lines(binary)
        if not row.get("label")
    }
    for row in _json_lines(safety):
        if row["label"] == "unsafe" or _pair_key(row["context"], row["response"]) in disliked:
            yield row["context"], answer(_context_rng(seed, row["context"]))
    for row in _json_lines(attacks):
        yield row["context"], answer(_context_rng(seed, row["context"]))


def _json_lines(path: Path | None) -> Iterator[dict]:
    if path is not None and path.exists():
        yield from map(json.loads, path.read_text(encoding="utf-8").splitlines())


def _context_rng(seed: int, context: list[dict]) -> random.Random:
    return random.Random(f"{seed}/{json.dumps(context, sort_keys=True)}")


def _pair_key(prompt: list[dict], completion: str) -> str:
    return json.dumps([prompt, completion], sort_keys=True)


def with_liked_rows(
    binary: Path, liked: Iterable[tuple[list[dict], str]], out: Path
) -> tuple[int, int]:
    """The binary rows plus each (prompt, completion) of `liked` as a liked row, each pair once
    (what people liked, what they said the bot should have said, the safe answers): CRINGE's
    positives and the reward model's good replies. Returns (rows written, rows added)."""
    seen, lines = set(), []
    for line in binary.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        seen.add(_pair_key(row["prompt"], row["completion"]))
        lines.append(line)
    before = len(lines)
    for prompt, completion in liked:
        key = _pair_key(prompt, completion)
        if key not in seen:
            seen.add(key)
            row = {"prompt": prompt, "completion": completion, "label": True}
            lines.append(json.dumps(row, ensure_ascii=False))
    _write_lines(out, lines)
    return len(lines), len(lines) - before


def _write_lines(path: Path, lines: list[str]) -> None:
    """The rows in an order set by their content (a hash of each line), not by the order their
    messages reached the store: the same rows make the same file, so the seeded trainer makes
    the same model from them however concurrent users' turns interleaved, and two arms of a
    comparison that kept the same rows train alike."""
    ordered = sorted(lines, key=lambda line: hashlib.sha256(line.encode("utf-8")).digest())
    path.write_text("".join(line + "\n" for line in ordered), encoding="utf-8")


def label_counts(path: Path) -> dict[str, int]:
    """Liked and disliked rows of a binary dataset."""
    counts = {"liked": 0, "disliked": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        counts["liked" if json.loads(line).get("label") else "disliked"] += 1
    return counts
