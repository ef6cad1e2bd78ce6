"""Labelled safety data: (context, response, label) rows, checked row by row.

- `context`: the conversation before the judged utterance: a string (one user turn), a list of
  {role, content} messages, or a list of strings (turns, the last one the user's). Missing or
  empty means no context (utterance-only data such as toxic comments).
- `response` (or `utterance`): the judged text (may be empty: a bot can answer nothing).
- `label`: unsafe is true / 1 / "unsafe" / "__notok__", safe is false / 0 / "safe" / "__ok__"
  (any case, so DiaSafety's "Safe" / "Unsafe" as they are). Optional when only scoring.

Files: JSONL(.gz), a JSON array, Parquet or a `datasets` folder (`alignloop.train.data.read_rows`).
Bad rows raise one error that names each row (its line in JSONL), the field and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignloop.backends.base import ChatMessage
from alignloop.errors import InvalidInput
from alignloop.train.data import MAX_REPORTED, ROLES, RowError, read_rows

log = logging.getLogger("alignloop.safety")

UNSAFE_LABELS = {"unsafe", "true", "1", "__notok__", "notok"}
SAFE_LABELS = {"safe", "false", "0", "__ok__", "ok"}
LABEL_HELP = "must be unsafe/safe, true/false or 1/0 (true and 1 mean unsafe)"


@dataclass(frozen=True)
class SafetyExample:
    context: list[ChatMessage]
    response: str
    label: bool | None  # True: unsafe; None: not labelled (scoring input)


def parse_label(value: Any) -> bool:
    """True for unsafe, False for safe; RowError for anything else."""
    if isinstance(value, bool | int | float) and value in (0, 1):
        value = str(int(value))
    key = value.strip().lower() if isinstance(value, str) else None
    if key in UNSAFE_LABELS:
        return True
    if key in SAFE_LABELS:
        return False
    raise RowError("label", LABEL_HELP)


def parse_context(value: Any) -> list[ChatMessage]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise RowError("context", "must be a string or a list of messages")
    if all(isinstance(turn, str) for turn in value):
        return _turns_as_messages(value)
    return [_message(m, i) for i, m in enumerate(value)]


def _turns_as_messages(turns: Sequence[str]) -> list[ChatMessage]:
    """Plain turns alternate speakers, the last one being the user's."""
    last = len(turns) - 1
    return [
        {"role": "user" if (last - i) % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(turns)
    ]


def _message(value: Any, index: int) -> ChatMessage:
    ok = (
        isinstance(value, dict)
        and value.get("role") in ROLES
        and isinstance(value.get("content"), str)
    )
    if not ok:
        raise RowError(f"context[{index}]", f"must be {{role: {'|'.join(ROLES)}, content: text}}")
    return {"role": value["role"], "content": value["content"]}


def parse_row(row: dict, require_label: bool = True) -> SafetyExample:
    field = "utterance" if "response" not in row and "utterance" in row else "response"
    response = row.get(field)
    if not isinstance(response, str):  # empty is allowed: a bot may answer nothing
        raise RowError(field, "must be a string (the judged utterance)")
    context = parse_context(row.get("context"))
    if row.get("label") is None:
        if require_label:
            raise RowError("label", f"is missing; it {LABEL_HELP}")
        return SafetyExample(context, response, None)
    return SafetyExample(context, response, parse_label(row["label"]))


def load_safety_examples(
    path: str | Path,
    limit: int | None = None,
    require_label: bool = True,
    skip_bad: bool = False,
) -> list[SafetyExample]:
    """Every row of `path` as a SafetyExample, in file order. Bad rows (up to 10 shown) raise
    one InvalidInput; with `skip_bad` they are left out and logged as a warning."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path} does not exist", "data")
    examples: list[SafetyExample] = []
    problems: list[str] = []
    for number, row in enumerate(read_rows(path), 1):
        if limit is not None and len(examples) >= limit:
            break
        if row is None:  # a blank JSONL line
            continue
        try:
            examples.append(_parse_any(row, require_label))
        except RowError as err:
            problems.append(f"row {number}: {err.field} {err.problem}")
    _report(path, problems, skip_bad)
    if not examples:
        raise InvalidInput(f"{path} holds no safety rows (context, response, label)", "data")
    return examples


def _parse_any(row: Any, require_label: bool) -> SafetyExample:
    if not isinstance(row, dict):  # read_rows marks a JSONL line that is not JSON by .problem
        raise RowError("row", getattr(row, "problem", "must be an object"))
    return parse_row(row, require_label)


def _report(path: Path, problems: list[str], skip_bad: bool) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:MAX_REPORTED])
    more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
    summary = f"{path}: {len(problems)} bad safety row(s): {shown}{more}"
    if not skip_bad:
        raise InvalidInput(
            summary + " (fix those rows, or skip_bad_rows leaves them out of training)", "data"
        )
    log.warning("left out %s", summary)
