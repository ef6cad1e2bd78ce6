"""Training data in the formats people already use, checked row by row.

| kind     | fields                                             | used by                      |
|----------|----------------------------------------------------|------------------------------|
| sft      | messages (the assistant turns are the targets)     | sft                          |
| pairs    | prompt, chosen, rejected [, margin]; or HH-RLHF's  | reward, dpo                  |
|          | chosen / rejected full "Human: / Assistant:" texts |                              |
| rankings | prompt, responses [, ranking: indices best first]  | reward (K-way)               |
| binary   | prompt, completion, label (thumbs)                 | kto, cringe, reward (binary) |
| prompts  | prompt (other fields ignored)                      | ppo (rollout prompts)        |
| text     | text                                               | ptx                          |

A prompt is a string (one user turn) or a list of {role, content} messages ending with a user
turn. Files: JSONL (optionally .gz), JSON (a list of rows), Parquet, or a folder written by
`datasets.Dataset.save_to_disk`. Every bad row is reported with its number (in JSONL, its line)
and the reason.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignloop.errors import InvalidInput

log = logging.getLogger("alignloop.train")
Message = dict[str, str]
ROLES = ("system", "user", "assistant")
MAX_REPORTED = 10


class RowError(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class SFTExample:
    messages: list[Message]


@dataclass(frozen=True)
class PairExample:
    prompt: list[Message]
    chosen: str
    rejected: str
    margin: float = 0.0


@dataclass(frozen=True)
class RankingExample:
    prompt: list[Message]
    responses: list[str]  # best first


@dataclass(frozen=True)
class BinaryExample:
    prompt: list[Message]
    completion: str
    label: bool  # True: liked / desirable


@dataclass(frozen=True)
class PromptExample:
    prompt: list[Message]


@dataclass(frozen=True)
class TextExample:
    text: str


def _text(row: dict, field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RowError(field, "must be a non-empty string")
    return value


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise RowError(field, "must be a non-empty list of {role, content} messages")
    messages = []
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise RowError(f"{field}[{i}]", f"must be {{role: {'|'.join(ROLES)}, content: text}}")
        messages.append({"role": m["role"], "content": m["content"]})
    return messages


def _prompt(row: dict) -> list[Message]:
    value = row.get("prompt")
    if isinstance(value, str):
        if not value.strip():
            raise RowError("prompt", "is empty")
        return [{"role": "user", "content": value}]
    messages = _messages(value, "prompt")
    if messages[-1]["role"] != "user":
        raise RowError("prompt", "must end with a user message (the turn being answered)")
    return messages


def _reply(value: Any, field: str) -> str:
    """A reply as text, or as a one-message assistant list (the conversational format)."""
    one_message = isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
    if one_message and value[0].get("role") == "assistant":
        value = value[0].get("content")
    if not isinstance(value, str) or not value.strip():
        raise RowError(field, "must be a non-empty string (or one assistant message)")
    return value


def parse_sft(row: dict) -> SFTExample:
    messages = _messages(row.get("messages"), "messages")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("messages", "has no assistant turn to learn from")
    return SFTExample(messages)


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def hh_dialogue(text: str, field: str) -> list[Message]:
    """Anthropic HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant: ..." text as messages."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise RowError(field, "is not a '\\n\\nHuman: ...\\n\\nAssistant: ...' dialogue")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [
        {"role": roles[speaker], "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


_HH_ASSISTANT = "\n\nAssistant:"


def _hh_pair(row: dict) -> PairExample:
    """HH-RLHF's pair: the dialogue both texts share, up to the last Assistant marker they
    share, is the prompt; what follows in each is its reply. (A few HH rows have a stray
    "Human:" inside a reply, so the shared prefix, not a turn-by-turn parse, decides.)"""
    chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
    cut = os.path.commonprefix([chosen, rejected]).rfind(_HH_ASSISTANT)  # noqa: RUF071 (by character)
    if cut < 0:
        raise RowError("rejected", "shares no dialogue with chosen before an Assistant turn")
    prompt = hh_dialogue(chosen[:cut], "chosen")
    if prompt[-1]["role"] != "user":
        raise RowError("chosen", "must have a Human turn before the last Assistant turn")
    replies = [text[cut + len(_HH_ASSISTANT) :].strip() for text in (chosen, rejected)]
    for field, reply in zip(("chosen", "rejected"), replies, strict=True):
        if not reply:
            raise RowError(field, "has an empty last Assistant turn")
    return PairExample(prompt, *replies)


def parse_pairs(row: dict) -> PairExample:
    if "prompt" not in row and isinstance(row.get("chosen"), str):
        return _hh_pair(row)
    margin = row.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, int | float):
        raise RowError("margin", "must be a number")
    return PairExample(
        _prompt(row),
        _reply(row.get("chosen"), "chosen"),
        _reply(row.get("rejected"), "rejected"),
        float(margin),
    )


def parse_rankings(row: dict) -> RankingExample:
    responses = row.get("responses")
    if not isinstance(responses, list) or len(responses) < 2:
        raise RowError("responses", "must list at least two responses")
    texts = [_reply(r, f"responses[{i}]") for i, r in enumerate(responses)]
    ranking = row.get("ranking")
    if ranking is None:
        return RankingExample(_prompt(row), texts)  # already best first
    if not isinstance(ranking, list) or sorted(ranking) != list(range(len(texts))):
        raise RowError(
            "ranking", f"must list each response index 0..{len(texts) - 1} once, best first"
        )
    return RankingExample(_prompt(row), [texts[i] for i in ranking])


_LABELS = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "like": True,
    "dislike": False,
    "liked": True,
    "disliked": False,
}


def parse_binary(row: dict) -> BinaryExample:
    label = row.get("label")
    if isinstance(label, bool | int | float) and label in (0, 1):
        label = str(int(label))  # True/False, 1/0 and 1.0/0.0
    key = label.strip().lower() if isinstance(label, str) else None
    if key not in _LABELS:
        raise RowError("label", "must be true/false, 1/0 or like/dislike")
    return BinaryExample(_prompt(row), _reply(row.get("completion"), "completion"), _LABELS[key])


def parse_prompt(row: dict) -> PromptExample:
    return PromptExample(_prompt(row))


def parse_text(row: dict) -> TextExample:
    return TextExample(_text(row, "text"))


PARSERS: dict[str, Callable[[dict], Any]] = {
    "sft": parse_sft,
    "pairs": parse_pairs,
    "rankings": parse_rankings,
    "binary": parse_binary,
    "prompts": parse_prompt,
    "text": parse_text,
}


def read_rows(path: Path) -> Iterator[Any]:
    """The raw rows of a JSONL(.gz), JSON, Parquet file or a saved `datasets` folder."""
    name = path.name.lower()
    if path.is_dir():
        from datasets import load_from_disk

        yield from load_from_disk(str(path))
    elif name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:  # a blank line yields None, so row numbers stay line numbers
                yield _json_line(line) if line.strip() else None
    elif name.endswith(".json"):
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise InvalidInput(f"{path}: a .json file must hold a list of rows", "data")
        yield from rows
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    else:
        raise InvalidInput(
            f"{path}: unknown data format; use .jsonl, .jsonl.gz, .json, .parquet or a folder "
            "saved with datasets.Dataset.save_to_disk",
            "data",
        )


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return _BadJSON(f"is not valid JSON ({exc.msg} at column {exc.colno})")


@dataclass(frozen=True)
class _BadJSON:
    problem: str


def load_examples(
    path: str | Path, kind: str, limit: int | None = None, skip_bad: bool = False
) -> list[Any]:
    """Every row of `path` parsed as `kind`. Bad rows (up to 10 shown) raise one error naming
    each row and its problem; with `skip_bad` they are left out and logged as a warning."""
    if kind not in PARSERS:
        raise InvalidInput(f"unknown data kind {kind!r}; use one of {', '.join(PARSERS)}", "kind")
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path} does not exist", "data")
    parse, examples, problems = PARSERS[kind], [], []
    for n, row in enumerate(read_rows(path), 1):
        if limit is not None and len(examples) >= limit:
            break
        if row is None:
            continue
        try:
            if isinstance(row, _BadJSON):
                raise RowError("row", row.problem)
            if not isinstance(row, dict):
                raise RowError("row", "must be an object")
            examples.append(parse(row))
        except RowError as err:
            problems.append(f"row {n}: {err.field} {err.problem}")
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        summary = f"{path}: {len(problems)} bad {kind} row(s): {shown}{more}"
        if not skip_bad:
            raise InvalidInput(summary + " (skip_bad leaves them out)", "data")
        log.warning("left out %s", summary)
    if not examples:
        raise InvalidInput(f"{path} holds no {kind} rows", "data")
    return examples
