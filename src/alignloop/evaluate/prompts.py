"""Prompt sets for evaluation: adversarial ones (SPEC.md §4: does the bot say unsafe things when
pushed?) and benign ones (does it stay engaging?). Each set is a list of chat prompts, each
ending with the user turn the evaluated model answers.

| name        | kind        | prompts                                                             |
|-------------|-------------|---------------------------------------------------------------------|
| hh-rlhf     | adversarial | the first human turn of each `chosen` dialogue of                   |
|             |             | `<data_dir>/hh-rlhf/harmless-base-dev.jsonl.gz`, rows                |
|             |             | [offset, offset + limit). The default offset, 1325, leaves the      |
|             |             | first 1,325 of the 1,825 rows to training (a baked-in model trains  |
|             |             | on the first rows) and the last 500 to evaluation.                  |
| diasafety   | adversarial | the contexts of `<data_dir>/diasafety/val.json` as the user turn    |
|             |             | (each distinct context once, in file order)                         |
| adversarial | adversarial | `adversarial_prompts.txt` shipped with the package: red-team        |
|             |             | prompts written for it (insults, dangerous or illegal advice,       |
|             |             | prejudice, agreeing with toxic statements, unqualified medical or   |
|             |             | legal advice)                                                        |
| chatterbot  | benign      | the first utterance of each chatterbot-corpus English conversation  |
|             |             | (distinct ones), leaving out the sensitive categories politics and  |
|             |             | health; categories are interleaved so that a limit samples them all |

A built-in set's last prompts are its evaluation window (`evaluation_window`): the loop's
promotion evaluates on them, and the simulated users and the demo's measurement leave them alone
(simulate/live/prompts.py), so a candidate is not judged on prompts it was trained on.

`data_dir` defaults to ../shared/data (relative to the working directory, as the project's
other tools read it); where a file is missing the loader raises NotFound naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from itertools import zip_longest
from pathlib import Path
from typing import Literal, get_args

from alignloop.backends.base import ChatMessage
from alignloop.errors import InvalidInput, NotFound
from alignloop.train.data import RowError, hh_dialogue, read_rows

PromptKind = Literal["adversarial", "benign"]
PROMPT_KINDS: tuple[str, ...] = get_args(PromptKind)
DEFAULT_DATA_DIR = "../shared/data"
HH_FILE = "hh-rlhf/harmless-base-dev.jsonl.gz"
HH_EVAL_OFFSET = 1325  # rows [0, 1325) are left to training; the last 500 of 1,825 to evaluation
DIASAFETY_FILE = "diasafety/val.json"
ADVERSARIAL_FILE = "adversarial_prompts.txt"
CHATTERBOT_EXCLUDED = frozenset({"politics", "health"})


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: list[list[ChatMessage]]
    kind: PromptKind
    source: str = ""  # where the prompts came from (file, rows)

    def __len__(self) -> int:
        return len(self.prompts)


def _user(text: str) -> list[ChatMessage]:
    return [{"role": "user", "content": text}]


def _window(items: list, offset: int, limit: int | None) -> list:
    return items[offset:] if limit is None else items[offset : offset + limit]


def _shared_file(data_dir: str | Path, name: str, what: str) -> Path:
    path = Path(data_dir) / name
    if not path.is_file():
        raise NotFound(
            f"the {what} prompts need {path}, which does not exist; point data_dir at the "
            "shared data folder (default ../shared/data) or leave the set out (its limit 0)",
            "data_dir",
        )
    return path


def load_hh_rlhf(
    data_dir: str | Path = DEFAULT_DATA_DIR, limit: int | None = None, offset: int = HH_EVAL_OFFSET
) -> PromptSet:
    """The first human turn of each `chosen` dialogue, rows [offset, offset + limit)."""
    path = _shared_file(data_dir, HH_FILE, "hh-rlhf")
    prompts: list[list[ChatMessage]] = []
    end = None if limit is None else offset + limit
    for number, row in enumerate(read_rows(path)):
        if end is not None and number >= end:
            break
        if number < offset:
            continue
        try:
            if not isinstance(row, dict) or not isinstance(row.get("chosen"), str):
                raise RowError("chosen", "is missing (not an HH-RLHF row)")
            first = hh_dialogue(row["chosen"], "chosen")[0]
        except RowError as err:
            raise InvalidInput(
                f"{path}: row {number + 1}: {err.field} {err.problem}", "data_dir"
            ) from err
        prompts.append(_user(first["content"]))
    rows = f"rows {offset}..{offset + len(prompts)}"
    return PromptSet("hh-rlhf", prompts, "adversarial", f"{path} ({rows})")


def load_diasafety(
    data_dir: str | Path = DEFAULT_DATA_DIR, limit: int | None = None, offset: int = 0
) -> PromptSet:
    """DiaSafety's validation contexts (each distinct one once, in file order) as user turns."""
    path = _shared_file(data_dir, DIASAFETY_FILE, "diasafety")
    rows = json.loads(path.read_text(encoding="utf-8"))
    contexts = dict.fromkeys(
        r["context"].strip() for r in rows if isinstance(r.get("context"), str) and r["context"]
    )
    chosen = _window(list(contexts), offset, limit)
    return PromptSet(
        "diasafety",
        [_user(c) for c in chosen],
        "adversarial",
        f"{path} (distinct contexts {offset}..{offset + len(chosen)})",
    )


def adversarial_prompts() -> list[str]:
    """The package's red-team prompts (one a line; blank lines and '#' comments skipped)."""
    text = resources.files("alignloop.evaluate").joinpath(ADVERSARIAL_FILE).read_text("utf-8")
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def load_adversarial(
    data_dir: str | Path = DEFAULT_DATA_DIR, limit: int | None = None, offset: int = 0
) -> PromptSet:
    chosen = _window(adversarial_prompts(), offset, limit)
    return PromptSet(
        "adversarial", [_user(p) for p in chosen], "adversarial", f"alignloop/{ADVERSARIAL_FILE}"
    )


def chatterbot_openers() -> list[str]:
    """The first utterance of each English conversation outside the excluded categories,
    each once, categories interleaved (one of each in turn, in alphabetical order)."""
    from alignloop.corpora import chatterbot_categories, chatterbot_conversations

    try:
        categories = [c for c in chatterbot_categories() if c not in CHATTERBOT_EXCLUDED]
        per_category = [
            list(dict.fromkeys(o for talk in chatterbot_conversations(c) if (o := talk[0].strip())))
            for c in categories
        ]
    except NotFound as exc:
        raise NotFound(exc.message, "benign_limit") from exc
    interleaved = (o for row in zip_longest(*per_category) for o in row if o is not None)
    return list(dict.fromkeys(interleaved))


def load_chatterbot(
    data_dir: str | Path = DEFAULT_DATA_DIR, limit: int | None = None, offset: int = 0
) -> PromptSet:
    chosen = _window(chatterbot_openers(), offset, limit)
    excluded = ", ".join(sorted(CHATTERBOT_EXCLUDED))
    return PromptSet(
        "chatterbot",
        [_user(p) for p in chosen],
        "benign",
        f"chatterbot-corpus english without {excluded} (openers {offset}..{offset + len(chosen)})",
    )


Loader = Callable[..., PromptSet]  # (data_dir, limit, offset=its default) -> PromptSet
PROMPT_SETS: dict[str, Loader] = {
    "hh-rlhf": load_hh_rlhf,
    "diasafety": load_diasafety,
    "adversarial": load_adversarial,
    "chatterbot": load_chatterbot,
}
SET_KINDS: dict[str, PromptKind] = {
    "hh-rlhf": "adversarial",
    "diasafety": "adversarial",
    "adversarial": "adversarial",
    "chatterbot": "benign",
}  # a prompt file's rows are benign unless marked (alignloop.evaluate.compare.load_marked_prompts)


def load_prompt_set(
    name: str,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    limit: int | None = None,
    offset: int | None = None,
) -> PromptSet:
    """The set registered as `name`; `offset` None is the set's own default (hh-rlhf: 1325)."""
    if name not in PROMPT_SETS:
        raise InvalidInput(f"unknown prompt set {name!r}; use one of {', '.join(PROMPT_SETS)}")
    extra = {} if offset is None else {"offset": offset}
    return PROMPT_SETS[name](data_dir, limit, **extra)


def evaluation_window(name: str, limit: int) -> PromptSet:
    """The last `limit` prompts of the built-in set `name` (none for 0): what the loop's
    promotion evaluates on."""
    whole = load_prompt_set(name)
    tail = whole.prompts[-limit:] if limit else []
    return PromptSet(whole.name, tail, whole.kind, f"{whole.source} (last {len(tail)})")
