"""The gate classifier's multi-task data (SPEC.md §4): one file of (context, response, label)
rows that teaches a safety classifier both stages of the two-stage model.

- **labelled**: (context, response, label) rows as they are (DiaSafety: replies in context);
  with `risky_contexts`, each distinct context of these rows is also an unsafe lone user turn
  (DiaSafety collected its contexts as the ones that invite an unsafe reply);
- **risky**: the opening user turn of each dialogue, unsafe, scored alone (HH-RLHF's red-team
  attempts, as BAD's adversarial human turns);
- **benign**: every user turn of each dialogue, safe, scored alone; then every message after
  its previous one, safe (ordinary replies in context);
- **benign replies**: every message after its previous one, safe, but no user turn alone:
  dialogues whose answers are safe but whose questions one may not want to call safe openers
  (TruthfulQA's bait misconceptions and stereotypes: "What's an ethnic group where people
  love dancing?");
- **everyday topic rows**: the shipped sensitive-topic data's everyday utterances, safe alone;
- **unsafe replies**: the last reply of each dialogue, unsafe after its context (HH-RLHF's
  rejected replies: compliance with a red-team request, which DiaSafety's replies do not
  teach the output stage).

The input stage of the gate scores a user turn alone, (no context, turn); the output stage
scores the reply after the conversation. A classifier trained on replies in context only (a
DiaSafety classifier) reads lone openers out of its distribution and flags half of everyday
greetings; these rows give it the input task too.

`exclude` names prompts that must not be trained on (an evaluation's or a calibration's): a
dialogue that opens with one, a labelled row whose context is one, and a lone turn that is
one are left out. Rows keep the order above, so the same sources give the same file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from alignloop.config import Settings
from alignloop.errors import InvalidInput, NotFound
from alignloop.safety.baked import (
    SOURCE_HELP,
    check_source,
    load_dialogues,
    refuse_existing,
    write_rows_and_card,
)
from alignloop.train.data import Message

CARD_FORMAT = 1


class GateDataConfig(Settings):
    """Build the gate classifier's multi-task data: labelled replies in context, risky and
    benign lone user turns, benign replies. Train on it with `alignloop safety train`."""

    out: str = Field(
        ...,
        description="Output rows (.jsonl; must not exist yet); counts go beside it in "
        "<out>.card.json.",
    )
    labelled: list[str] = Field(
        default_factory=list,
        description="Labelled (context, response, label) files kept as they are, e.g. "
        "DiaSafety's train.json.",
    )
    risky_contexts: bool = Field(
        False, description="Also learn each distinct context of the labelled rows as an "
        "unsafe lone user turn (right for DiaSafety, whose contexts invite unsafe replies).",
    )  # fmt: skip
    risky: list[str] = Field(
        default_factory=list,
        description=f"Dialogues whose opening user turn is unsafe alone: {SOURCE_HELP}.",
    )
    benign: list[str] = Field(
        default_factory=list,
        description="Dialogues whose user turns are safe alone and whose replies are safe in "
        "context (same spellings as risky).",
    )
    benign_replies: list[str] = Field(
        default_factory=list,
        description="Dialogues whose replies are safe in context, their user turns not learnt "
        "alone (questions that bait, such as TruthfulQA's; same spellings as risky).",
    )
    everyday_topic_rows: bool = Field(
        True, description="Add the shipped sensitive-topic data's everyday utterances as safe "
        "lone turns.",
    )  # fmt: skip
    exclude: str | None = Field(
        None,
        description="Prompts never trained on, one a line (.txt) or one JSON string a line "
        "(.jsonl): dialogues opening with one, labelled rows in its context, lone turns equal "
        "to one.",
    )
    unsafe_replies: list[str] = Field(
        default_factory=list,
        description="Dialogues whose last reply is unsafe after its context, e.g. "
        "'hh-rlhf-rejected:PATH' (same spellings as risky).",
    )
    skip_bad_rows: bool = Field(False, description="Leave bad source rows out instead of stopping.")

    @field_validator(
        "labelled", "risky", "benign", "benign_replies", "unsafe_replies", mode="before"
    )
    @classmethod
    def _split_sources(cls, value: list[str] | str) -> list[str]:
        if isinstance(value, str):  # the command line gives "chatterbot,sft:qa.jsonl"
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("risky", "benign", "benign_replies", "unsafe_replies")
    @classmethod
    def _known_sources(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for spec in value:
            check_source(spec, info.field_name)
        return value

    @field_validator("out")
    @classmethod
    def _jsonl_out(cls, value: str) -> str:
        if not value.endswith(".jsonl"):
            raise ValueError(f"must end with .jsonl (the format safety train reads), got {value}")
        return value


@dataclass
class GateData:
    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: int = 0
    out: Path | None = None

    def counts(self) -> dict[str, int]:
        by_task = Counter(f"{r['task']}_{r['label']}" for r in self.rows)
        return {"rows": len(self.rows), **dict(sorted(by_task.items())), "excluded": self.excluded}


def read_prompts(path: str | Path, option: str = "exclude") -> set[str]:
    """The prompts of a .txt (one a line) or .jsonl (one JSON string a line) file, stripped."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"option {option!r}: {path} is not a file; give a prompts file", option)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return {line.strip() for line in lines}
    prompts = set()
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, str):
            raise InvalidInput(
                f"option {option!r}: {path} line {number} is not a JSON string; write one "
                'quoted prompt a line ("...") or use a .txt file',
                option,
            )
        prompts.add(value.strip())
    return prompts


def multitask_rows(
    labelled: Sequence[tuple[list[Message], str, bool]] = (),
    risky: Sequence[Sequence[Message]] = (),
    benign: Sequence[Sequence[Message]] = (),
    everyday: Sequence[str] = (),
    risky_contexts: bool = False,
    exclude: Iterable[str] = (),
    unsafe_replies: Sequence[Sequence[Message]] = (),
    benign_replies: Sequence[Sequence[Message]] = (),
) -> GateData:
    """The rows in a fixed order: labelled, benign lone turns, everyday lone turns, benign
    replies (of `benign`, then of `benign_replies`), risky lone turns, risky contexts, unsafe
    replies (pure: no files)."""
    skip = {text.strip() for text in exclude}
    result = GateData()

    def opens_excluded(messages: Sequence[Message]) -> bool:
        first = messages[0]["content"].strip() if messages else ""
        if first in skip:
            result.excluded += 1
        return first in skip

    kept = [row for row in labelled if not opens_excluded(row[0])]
    talks = [d for d in benign if not opens_excluded(d)]
    answered = [d for d in benign_replies if not opens_excluded(d)]
    attempts = [d for d in risky if not opens_excluded(d)]
    complied = [d for d in unsafe_replies if len(d) > 1 and not opens_excluded(d)]
    add = result.rows.append
    for context, response, unsafe in kept:
        add(_row(context, response, unsafe, "labelled"))
    turns = [m["content"] for d in talks for m in d if m["role"] == "user"]
    for text in [*turns, *everyday]:
        add(_row([], text, False, "input"))
    for d in [*talks, *answered]:
        for k in range(1, len(d)):
            add(_row([d[k - 1]], d[k]["content"], False, "reply"))
    for d in attempts:
        opening = next((m["content"] for m in d if m["role"] == "user"), None)
        if opening is not None:
            add(_row([], opening, True, "input"))
    if risky_contexts:
        contexts = dict.fromkeys(c[-1]["content"] for c, _, _ in kept if c)
        for text in contexts:
            add(_row([], text, True, "input"))
    for d in complied:
        add(_row(d[:-1], d[-1]["content"], True, "reply"))
    return result


def _row(context: Sequence[Message], response: str, unsafe: bool, task: str) -> dict[str, Any]:
    plain = [{"role": m["role"], "content": m["content"]} for m in context]
    return {"context": plain, "response": response, "label": "unsafe" if unsafe else "safe",
            "task": task}  # fmt: skip


def build_gate_data(config: GateDataConfig) -> GateData:
    """Read every source, build the rows and write `out` plus its card; any missing file or bad
    row stops it before anything is written."""
    from alignloop.safety.data import load_safety_examples
    from alignloop.safety.sensitive import shipped_rows

    out = Path(config.out)
    refuse_existing(out)
    if not (
        config.labelled or config.risky or config.benign or config.benign_replies
        or config.unsafe_replies
    ):  # fmt: skip
        raise InvalidInput(
            "nothing to build from: give labelled, risky, benign, benign_replies or "
            "unsafe_replies sources",
            "labelled",
        )
    labelled = []
    for path in config.labelled:
        if not Path(path).exists():
            raise NotFound(f"option 'labelled': {path} does not exist", "labelled")
        examples = load_safety_examples(path, skip_bad=config.skip_bad_rows)
        labelled += [(e.context, e.response, bool(e.label)) for e in examples]
    everyday = [r.text for r in shipped_rows() if r.topic == "none"]
    result = multitask_rows(
        labelled,
        _dialogues(config, "risky"),
        _dialogues(config, "benign"),
        everyday if config.everyday_topic_rows else [],
        config.risky_contexts,
        read_prompts(config.exclude) if config.exclude else (),
        _dialogues(config, "unsafe_replies"),
        _dialogues(config, "benign_replies"),
    )
    card = {"format": CARD_FORMAT, "kind": "gate-data", "counts": result.counts(),
            "sources": config.model_dump(exclude={"out"})}  # fmt: skip
    write_rows(result, out, card)
    return result


def _dialogues(config: GateDataConfig, option: str) -> list[list[Message]]:
    """Every dialogue of the sources an option names, in their order (a bad row is refused
    naming the option, or left out with skip_bad_rows)."""
    return [
        dialogue
        for spec in getattr(config, option)
        for dialogue in load_dialogues(spec, None, config.skip_bad_rows, option)
    ]


def write_rows(result: GateData, out: Path, card: dict[str, Any]) -> None:
    """The rows as JSONL and `card` beside them (<out>.card.json), each moved into place whole."""
    write_rows_and_card(result.rows, out, card)
    result.out = out
