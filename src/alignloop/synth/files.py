"""Files of the synth pipeline: package data, checked JSONL input, atomic output, resumable logs.

A resumable log is a JSONL file that generation appends to, one batch per write (flushed and
fsync'ed), beside a `<name>.config.json` fingerprint of the settings that produced it. A rerun
reads the rows already there and generates only what is missing; a last line cut short by a
crash is dropped (the file is cut back to the last whole line). Rows written under other
settings are refused instead of being mixed with new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from alignloop.errors import ConfigError, InvalidInput

QUERY_FIELD = "query"


def package_file(name: str) -> Path:
    """A data file shipped in alignloop/synth/."""
    return Path(str(resources.files("alignloop.synth").joinpath(name)))


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value (settings fingerprints, seeds)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def derived_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts: the same parts give the same seed in every run."""
    return int(digest([str(p) for p in parts])[:8], 16) & 0x7FFFFFFF


def read_seed_queries(path: Path) -> list[str]:
    """One query a line; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise InvalidInput(
            f"seed query file {path} does not exist; pass --seeds FILE (one query a line) "
            "or leave it unset for the packaged seeds",
            "seeds",
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    queries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not queries:
        raise InvalidInput(f"seed query file {path} holds no queries (one a line)", "seeds")
    return queries


def read_jsonl_objects(path: Path, option: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; a bad line raises naming file and line."""
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist (option {option!r})", option)
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{path} line {number}: not valid JSON ({exc.msg}); fix or remove the line",
                    option,
                ) from exc
            if not isinstance(row, dict):
                raise InvalidInput(f"{path} line {number}: must be a JSON object", option)
            rows.append((number, row))
    return rows


@dataclass(frozen=True)
class Query:
    id: str
    text: str


def read_queries(path: Path) -> list[Query]:
    """Queries from JSONL rows {"query": text, "id": optional}; ids default to 'line<N>'."""
    queries: list[Query] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl_objects(path, "queries"):
        text = row.get(QUERY_FIELD)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(
                f"{path} line {number}: field 'query' must be a non-empty string", "queries"
            )
        query_id = row.get("id", f"line{number}")
        if not isinstance(query_id, str | int) or isinstance(query_id, bool):
            raise InvalidInput(f"{path} line {number}: field 'id' must be a string", "queries")
        query_id = str(query_id)
        if query_id in seen:
            raise InvalidInput(
                f"{path} line {number}: id {query_id!r} already used on line {seen[query_id]}; "
                "ids must be unique",
                "queries",
            )
        seen[query_id] = number
        queries.append(Query(query_id, text.strip()))
    if not queries:
        raise InvalidInput(
            f"{path} holds no queries; run `alignloop synth queries` or write JSONL rows "
            '{"id": ..., "query": ...}',
            "queries",
        )
    return queries


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write all rows or none (temporary file renamed into place); the number written."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    _write_atomically(path, "".join(lines))
    return len(lines)


def write_json(path: Path, value: Any) -> None:
    _write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@dataclass
class ResumableLog:
    """An append-only JSONL log of generations, bound to the settings fingerprint that made it."""

    path: Path
    fingerprint: dict
    rows: list[dict] = field(default_factory=list)
    _cut_at: int | None = None  # byte offset of a torn last line, cut on the first append

    @property
    def fingerprint_path(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(".jsonl") + ".config.json")

    @classmethod
    def open(cls, path: Path, fingerprint: dict, option: str) -> ResumableLog:
        """Read what a previous run left; refuse rows written under other settings."""
        log = cls(path, fingerprint)
        if path.exists():
            log._check_fingerprint(option)
            log.rows, log._cut_at = read_log_rows(path, option)
        return log

    def _check_fingerprint(self, option: str) -> None:
        stored = None
        if self.fingerprint_path.exists():
            stored = json.loads(self.fingerprint_path.read_text(encoding="utf-8"))
        if stored != self.fingerprint:
            changed = sorted(
                k
                for k in set(self.fingerprint) | set(stored or {})
                if (stored or {}).get(k) != self.fingerprint.get(k)
            )
            raise ConfigError(
                f"{self.path} was generated with other settings ({', '.join(changed)} differ); "
                "use a new --out folder, or delete the file to regenerate it",
                option,
            )

    def append(self, rows: list[dict]) -> None:
        """Add rows in one write, flushed to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or not self.fingerprint_path.exists():
            write_json(self.fingerprint_path, self.fingerprint)  # (a deleted log's is stale)
        if self._cut_at is not None:
            with self.path.open("r+b") as f:
                f.truncate(self._cut_at)
            self._cut_at = None
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend(rows)


def read_log_rows(path: Path, option: str) -> tuple[list[dict], int | None]:
    """The whole rows of a log and, if its last line was torn by a crash, where to cut it.

    Each row is written with its newline in one write, so a last line without a newline is
    the remains of an interrupted write: left out (and cut off on the next append)."""
    data = path.read_bytes()
    rows, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        if not line.endswith(b"\n"):
            return rows, offset
        offset += len(line)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"{path} line {number}: not valid JSON; delete the file (or the line) to "
                "regenerate it",
                option,
            ) from exc
        if not isinstance(row, dict):
            raise InvalidInput(f"{path} line {number}: must be a JSON object", option)
        rows.append(row)
    return rows, None
