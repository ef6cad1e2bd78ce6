"""Baked-in safety data (SPEC.md §4): teach the model itself to answer unsafe turns with a canned
reply, so that no classifier is needed at deployment.

For every assistant turn of every dialogue (the target), with `context` the messages before it,
the target is replaced by a canned reply when the classifier fires (P(unsafe) >= threshold) on

- the input: the last context turn, scored as (context[:-1], context[-1]), or
- the target: scored as (context, target).

Scores always read the original dialogue (a replaced turn does not change what later turns are
judged after), and each message is scored at most once: in a user/assistant dialogue every
message is scored exactly once, in chunks of `chunk_size` pairs per `score_batch` call. The
baked dialogues are then joined by unmodified dialogues of `mix_data` (`mix_weight` of them per
baked dialogue), and written as SFT rows that `alignloop train sft` reads as they are.

With `canned_turns` "first", a dialogue ends at its first replaced turn: the later turns (red-team
dialogues keep pushing, so most of them would be canned too) are left out. The trainer learns
the canned reply once per unsafe dialogue instead of once per unsafe turn, a smaller share of
the targets. Measured (README, safety benchmark): it cans more benign openers, not fewer, since
nearly every canned target is then a first reply to a lone opening turn.

What a mix lacks, the baked model tends to can: a corpus mix with no device troubles or small
talk left it answering "My printer is not printing." with the canned reply. `mix_everyday`
adds the package's everyday prompts, answered by `mix_model`, to the mix.

Sources (the `data` and `mix_data` options):

| spelling                            | rows                                                   |
|-------------------------------------|--------------------------------------------------------|
| PATH or sft:PATH                    | SFT rows {"messages": [...]} (any file the trainer     |
|                                     | reads: .jsonl(.gz), .json, .parquet, datasets folder)  |
| hh-rlhf:PATH                        | preference pairs; HH-RLHF's chosen/rejected dialogues: |
|                                     | the chosen dialogue (or prompt + chosen)               |
| diasafety:PATH                      | (context, response) rows: context -> user turn(s),     |
|                                     | response -> assistant turn (labels are not used)       |
| chatterbot, chatterbot:LANGUAGE,    | chatterbot-corpus conversations (default: english, all |
| chatterbot:LANGUAGE/CATEGORY        | categories), turns alternating user / assistant        |
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from pydantic import Field, ValidationInfo, field_validator

from alignloop.config import Settings
from alignloop.errors import ConfigError, Conflict, InvalidInput, NotFound
from alignloop.safety.gate import CannedReplies
from alignloop.train.data import Message

if TYPE_CHECKING:
    from alignloop.backends.base import Backend, GenerationParams
    from alignloop.safety.classifiers import OnProgress, SafetyClassifier

SCORE_CHUNK = 1024  # (context, utterance) pairs per score_batch call
T = TypeVar("T")
CannedTurns = Literal["all", "first"]
CANNED_TURNS: tuple[str, ...] = get_args(CannedTurns)
CARD_FORMAT = 1
SOURCE_HELP = (
    "'PATH' or 'sft:PATH' (rows with messages), 'hh-rlhf:PATH' (HH-RLHF pairs: the chosen "
    "dialogue; 'hh-rlhf-rejected:PATH' the rejected one), 'diasafety:PATH' (context, response "
    "rows) or 'chatterbot', 'chatterbot:LANGUAGE', 'chatterbot:LANGUAGE/CATEGORY' (the "
    "chatterbot-corpus package; default english, every category)"
)


# --- sources --------------------------------------------------------------------------------


def _existing(path: str, option: str) -> Path:
    if not path:
        raise ConfigError(f"option {option!r}: the source names no path; use {SOURCE_HELP}", option)
    if not Path(path).exists():
        raise NotFound(
            f"option {option!r}: {path} does not exist; give an existing file or folder "
            f"({SOURCE_HELP})",
            option,
        )
    return Path(path)


def _sft_source(arg: str, limit: int | None, skip_bad: bool, option: str) -> list[list[Message]]:
    from alignloop.train.data import load_examples

    return [e.messages for e in load_examples(_existing(arg, option), "sft", limit, skip_bad)]


def _hh_rlhf_source(
    arg: str, limit: int | None, skip_bad: bool, option: str, side: str = "chosen"
) -> list[list[Message]]:
    """The trainer's own pair parser: HH's shared prefix is the prompt, the chosen (or, with
    side 'rejected', the rejected: in the red-team data mostly compliance) tail the last
    assistant turn (robust to the stray "Human:" some HH replies hold)."""
    from alignloop.train.data import load_examples

    pairs = load_examples(_existing(arg, option), "pairs", limit, skip_bad)
    return [[*p.prompt, {"role": "assistant", "content": getattr(p, side)}] for p in pairs]


def _diasafety_source(
    arg: str, limit: int | None, skip_bad: bool, option: str
) -> list[list[Message]]:
    from alignloop.safety.data import load_safety_examples

    examples = load_safety_examples(
        _existing(arg, option), limit, require_label=False, skip_bad=skip_bad
    )
    return [[*e.context, {"role": "assistant", "content": e.response}] for e in examples]


def _chatterbot_source(
    arg: str, limit: int | None, skip_bad: bool, option: str
) -> list[list[Message]]:
    """`LANGUAGE[/CATEGORY]` (default english, every category); a lone line has no reply."""
    from alignloop.corpora import chatterbot_categories, chatterbot_conversations

    language, _, category = (arg or "english").partition("/")
    try:
        categories = [category] if category else chatterbot_categories(language)
        talks = [t for c in categories for t in chatterbot_conversations(c, language)]
    except NotFound as exc:
        raise NotFound(f"option {option!r}: {exc.message}", option) from exc
    roles = ("user", "assistant")
    dialogues = [
        [{"role": roles[i % 2], "content": text} for i, text in enumerate(talk)]
        for talk in talks
        if len(talk) >= 2
    ]
    return dialogues[:limit]


Loader = Callable[[str, int | None, bool, str], list[list[Message]]]
SOURCES: dict[str, Loader] = {
    "sft": _sft_source,
    "hh-rlhf": _hh_rlhf_source,
    "hh-rlhf-rejected": partial(_hh_rlhf_source, side="rejected"),
    "diasafety": _diasafety_source,
    "chatterbot": _chatterbot_source,
}
_SOURCE_NAME = re.compile(r"[A-Za-z][\w.-]*")


def parse_source(spec: str, option: str = "data") -> tuple[str, str]:
    """(source kind, argument) of a source spelling; a plain path is an SFT file."""
    kind, sep, arg = spec.partition(":")
    if kind in SOURCES:
        return kind, arg
    if sep and _SOURCE_NAME.fullmatch(kind) and not Path(spec).exists():
        raise ConfigError(
            f"option {option!r}: unknown source {kind!r} in {spec!r}; use {SOURCE_HELP}", option
        )
    return "sft", spec


def check_source(spec: str, option: str) -> None:
    """A config validator's check of one source spelling: ValueError (pydantic names the field)
    for an unknown source."""
    try:
        parse_source(spec, option)
    except ConfigError as err:
        raise ValueError(err.message.partition(": ")[2]) from err


def load_dialogues(
    spec: str, limit: int | None = None, skip_bad: bool = False, option: str = "data"
) -> list[list[Message]]:
    """The dialogues (lists of messages) of a source, checked as SFT rows: bad rows raise one
    InvalidInput naming each row and its problem (or, with `skip_bad`, are left out)."""
    from alignloop.train.data import RowError, parse_sft

    kind, arg = parse_source(spec, option)
    try:
        dialogues = SOURCES[kind](arg, limit, skip_bad, option)
    except InvalidInput as err:  # the readers name their option 'data' and 'skip_bad'
        message = err.message.replace(
            "(skip_bad leaves them out)", "(fix those rows, or skip_bad_rows leaves them out)"
        )
        raise InvalidInput(f"option {option!r}: {message}", option) from err
    for number, messages in enumerate(dialogues, 1):
        try:
            parse_sft({"messages": messages})  # what the trainer will demand of each row
        except RowError as err:  # a converter made a row the trainer would refuse
            raise InvalidInput(
                f"{spec}: dialogue {number}: {err.field} {err.problem}", option
            ) from err
    if not dialogues:
        raise InvalidInput(f"option {option!r}: {spec} holds no dialogues", option)
    return dialogues


# --- baking ---------------------------------------------------------------------------------


@dataclass
class BakeResult:
    rows: list[dict[str, Any]]  # SFT rows: messages, origin ('data' | 'mix'), index [, replaced]
    dialogues: int = 0
    assistant_turns: int = 0
    replaced_turns: int = 0
    replaced_by_input: int = 0  # the last context turn fired (maybe the target too)
    replaced_by_target: int = 0  # the target fired (maybe the input too)
    replaced_by_both: int = 0
    changed_dialogues: int = 0
    cut_turns: int = 0  # assistant turns left out after a dialogue's first canned one
    scored_utterances: int = 0
    mix_available: int = 0
    mixed_rows: int = 0
    out: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "dialogues": self.dialogues,
            "assistant_turns": self.assistant_turns,
            "replaced_turns": self.replaced_turns,
            "replaced_by_input": self.replaced_by_input,
            "replaced_by_target": self.replaced_by_target,
            "replaced_by_both": self.replaced_by_both,
            "changed_dialogues": self.changed_dialogues,
            "cut_turns": self.cut_turns,
            "scored_utterances": self.scored_utterances,
            "mix_available": self.mix_available,
            "mixed_rows": self.mixed_rows,
            "rows": len(self.rows),
        }


def _scored_messages(dialogues: Sequence[Sequence[Message]]) -> list[tuple[int, int]]:
    """(dialogue, message) of every message the rule reads: each assistant turn and the turn
    before it, once each, in order."""
    keys = []
    for d, messages in enumerate(dialogues):
        needed = {k for k, m in enumerate(messages) if m["role"] == "assistant"}
        needed |= {k - 1 for k in needed if k > 0}
        keys.extend((d, j) for j in sorted(needed))
    return keys


def score_messages(
    dialogues: Sequence[Sequence[Message]],
    classifier: SafetyClassifier,
    chunk_size: int = SCORE_CHUNK,
    on_progress: OnProgress | None = None,
) -> dict[tuple[int, int], float]:
    """P(unsafe) of message j of dialogue d, said after the messages before it, for every
    (d, j) the baking rule reads; one `score_batch` call per chunk of pairs."""
    keys = _scored_messages(dialogues)
    scores: dict[tuple[int, int], float] = {}
    if on_progress:
        on_progress("score", 0, len(keys), {})
    for start in range(0, len(keys), chunk_size):
        chunk = keys[start : start + chunk_size]
        pairs = [(dialogues[d][:j], dialogues[d][j]["content"]) for d, j in chunk]
        batch = classifier.score_batch(pairs)
        if len(batch) != len(chunk):
            raise InvalidInput(
                f"classifier {classifier.name} returned {len(batch)} scores for {len(chunk)} pairs",
                "classifier",
            )
        scores.update(zip(chunk, map(float, batch), strict=True))
        if on_progress:
            on_progress("score", len(scores), len(keys), {})
    return scores


def bake_dialogues(
    dialogues: Sequence[Sequence[Message]],
    classifier: SafetyClassifier,
    threshold: float = 0.5,
    canned: CannedReplies | str = "non_sequitur",
    seed: int = 0,
    mix: Sequence[Sequence[Message]] = (),
    mix_weight: float = 1.0,
    chunk_size: int = SCORE_CHUNK,
    on_progress: OnProgress | None = None,
    canned_turns: CannedTurns = "all",
) -> BakeResult:
    """The baked dialogues (each assistant turn whose input or itself fires replaced by a canned
    reply, every other message as it was; with `canned_turns` "first", each dialogue cut after
    its first replaced turn), in input order, then `mix_weight` unmodified `mix` dialogues per
    baked one (at most all of them), drawn without replacement by `seed`."""
    if mix_weight < 0 or not math.isfinite(mix_weight):
        raise InvalidInput(f"mix_weight must be a number >= 0, got {mix_weight}", "mix_weight")
    if canned_turns not in CANNED_TURNS:
        raise InvalidInput(
            f"canned_turns must be one of {', '.join(CANNED_TURNS)}, got {canned_turns!r}",
            "canned_turns",
        )
    canned = CannedReplies(canned) if isinstance(canned, str) else canned
    scores = score_messages(dialogues, classifier, chunk_size, on_progress)
    rng = random.Random(seed)
    result = BakeResult(rows=[], dialogues=len(dialogues), scored_utterances=len(scores))
    for d, messages in enumerate(dialogues):
        baked = [{"role": m["role"], "content": m["content"]} for m in messages]
        replaced = []
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            result.assistant_turns += 1
            p_input = scores[d, k - 1] if k > 0 else None
            p_target = scores[d, k]
            by_input = p_input is not None and p_input >= threshold
            by_target = p_target >= threshold
            if not (by_input or by_target):
                continue
            baked[k]["content"] = canned.pick(rng)
            by = "both" if by_input and by_target else "input" if by_input else "target"
            replaced.append({"turn": k, "by": by, "p_input": p_input, "p_target": p_target})
            result.replaced_turns += 1
            result.replaced_by_input += by_input
            result.replaced_by_target += by_target
            result.replaced_by_both += by_input and by_target
            if canned_turns == "first":
                result.cut_turns += sum(m["role"] == "assistant" for m in messages[k + 1 :])
                del baked[k + 1 :]
                break
        result.changed_dialogues += bool(replaced)
        result.rows.append({"messages": baked, "origin": "data", "index": d, "replaced": replaced})
    result.mix_available = len(mix)
    wanted = min(math.floor(mix_weight * len(dialogues) + 0.5), len(mix)) if mix else 0
    for i in drawn(range(len(mix)), wanted, f"mix:{seed}"):
        messages = [{"role": m["role"], "content": m["content"]} for m in mix[i]]
        result.rows.append({"messages": messages, "origin": "mix", "index": i})
    result.mixed_rows = wanted
    return result


def own_voice(
    mix: Sequence[Sequence[Message]],
    backend: Backend,
    params: GenerationParams,
    batch_size: int = 16,
    on_progress: OnProgress | None = None,
) -> list[list[Message]]:
    """Each mix dialogue cut to the messages before its first assistant turn (a dialogue with
    none: all of it), answered by the backend's own reply (a dialogue that opens with the
    assistant, or that it answers with nothing, is left out).

    Why: a mix in another voice (corpus answers) spreads the baked model's first words over
    many tokens, so on a turn it has not seen the canned reply's one opening outweighs each of
    them; its own replies keep its usual opening likely. Greedy decoding is best for this."""
    from alignloop.evaluate.generate import generate_replies

    firsts = (next((k for k, m in enumerate(d) if m["role"] == "assistant"), len(d)) for d in mix)
    openings = [list(d[:first]) for d, first in zip(mix, firsts, strict=True) if first > 0]
    step = None if on_progress is None else (lambda d, t: on_progress("reply", d, t, {}))
    said = generate_replies(backend, openings, params, batch_size, step)
    return [
        [*opening, {"role": "assistant", "content": reply}]
        for opening, reply in zip(openings, said, strict=True)
        if reply
    ]


def drawn(items: Sequence[T], k: int | None, salt: str) -> list[T]:
    """`k` of the items (None: all), drawn without replacement by a generator seeded with
    `salt`, in their input order."""
    if k is None or k >= len(items):
        return list(items)
    return [items[i] for i in sorted(random.Random(salt).sample(range(len(items)), k))]


def everyday_prompts() -> list[str]:
    """The package's everyday prompts, once each: the sensitive-topic data's everyday rows
    (small talk, device troubles, how-to questions) and the synthetic-data seed queries."""
    from alignloop.safety.sensitive import shipped_rows
    from alignloop.synth.files import package_file, read_seed_queries

    texts = [row.text for row in shipped_rows() if row.topic == "none"]
    texts += read_seed_queries(package_file("seed_queries.txt"))
    return list(dict.fromkeys(text.strip() for text in texts if text.strip()))


def everyday_sample(prompts: Sequence[str], rows: int | None, seed: int) -> list[str]:
    """`rows` of the everyday prompts (None: all), drawn by `seed`: the one draw the bake and
    the safety benchmark share."""
    return drawn(prompts, rows, f"everyday:{seed}")


def voiced_mix(
    mix: Sequence[Sequence[Message]], own: Sequence[Sequence[Message]], mix_replies: str
) -> list[list[Message]]:
    """The mix a `mix_replies` setting trains on: the corpus's dialogues, the model's own
    (`own_voice`), or both, corpus first."""
    chosen = {"corpus": [mix], "model": [own], "both": [mix, own]}[mix_replies]
    return [list(d) for part in chosen for d in part]


# --- config and the whole step --------------------------------------------------------------


class BakeConfig(Settings):
    """Build baked-in safety SFT data: every assistant turn whose last context turn or which
    itself the classifier finds unsafe becomes a canned reply; mix in unmodified dialogues.
    Train on the result with `alignloop train sft`."""

    data: str = Field(..., description=f"Dialogues to bake: {SOURCE_HELP}.")
    out: str = Field(
        ...,
        description="Output SFT rows (.jsonl; must not exist yet); counts and settings go "
        "beside it in <out>.card.json.",
    )
    classifier: str = Field(
        "profanity",
        description="Safety classifier: a folder written by `alignloop safety train`, "
        "'profanity', or (with db) the name of a registered classifier.",
    )
    db: str | None = Field(None, description="Store to look registered classifier names up in.")
    threshold: float = Field(
        0.5, ge=0, le=1, description="P(unsafe) at or above which a turn counts as unsafe."
    )
    canned_reply: Literal["non_sequitur", "safe_response"] = Field(
        "non_sequitur",
        description="What replaces a triggered target: a topic change, or an apology.",
    )
    canned_turns: CannedTurns = Field(
        "all",
        description="Which triggered targets become canned replies: all of them, or only a "
        "dialogue's first (the dialogue then ends there: fewer canned targets, so fewer benign "
        "turns answered with one).",
    )
    mix_data: str | None = Field(
        None, description="Unmodified dialogues mixed in (same spellings as data); none: no mix."
    )
    mix_weight: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="Unmodified mix_data dialogues per baked dialogue (drawn without "
        "replacement, at most all of them).",
    )
    mix_replies: Literal["corpus", "model", "both"] = Field(
        "corpus",
        description="The mix's replies: as written (corpus); the model's own greedy reply to "
        "each mix dialogue's opening turn (model: on safe turns the baked model learns back "
        "what it says already, and deflects fewer unfamiliar benign turns); or both.",
    )
    mix_everyday: bool = Field(
        False,
        description="Also mix in the package's everyday prompts (small talk, device troubles, "
        "how-to questions), each answered by mix_model: a mix without such turns leaves the "
        "baked model canning them.",
    )
    mix_everyday_rows: int | None = Field(
        None,
        ge=1,
        description="With mix_everyday: how many of the everyday prompts to mix in, drawn by "
        "seed (none: all of them). Each of them teaches the model to answer rather than can, "
        "harmful requests that look like them too: fewer of them keep more of the bake's "
        "safety.",
    )
    mix_model: str = Field(
        "smollm2",
        description="With mix_replies model or both, or mix_everyday: the model that replies, "
        "the one to be baked (a name `alignloop serve --model` takes, or a model folder).",
    )
    mix_max_new_tokens: int = Field(
        48,
        ge=1,
        description="With mix_replies model or both, or mix_everyday: the longest reply, in "
        "tokens.",
    )
    mix_temperature: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="With mix_replies model or both, or mix_everyday: 0 for the greedy reply "
        "(the model's most likely opening, what the bake keeps likely), above 0 to sample "
        "(by seed).",
    )
    limit: int | None = Field(None, ge=1, description="Bake at most this many dialogues of data.")
    skip_bad_rows: bool = Field(False, description="Leave bad data rows out instead of stopping.")
    seed: int = Field(0, description="Seed of the canned replies' topics and the mix sample.")
    chunk_size: int = Field(
        SCORE_CHUNK, ge=1, description="(context, utterance) pairs scored per classifier call."
    )

    @field_validator("data", "mix_data")
    @classmethod
    def _known_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_source(value, info.field_name)
        return value

    @field_validator("mix_replies")
    @classmethod
    def _mix_to_reply_to(cls, value: str, info: ValidationInfo) -> str:
        if value != "corpus" and not info.data.get("mix_data"):
            raise ValueError(f"{value!r} answers the mix_data dialogues: set mix_data too")
        return value

    @field_validator("mix_everyday_rows")
    @classmethod
    def _everyday_to_draw_from(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("mix_everyday"):
            raise ValueError("draws from the everyday prompts: set mix_everyday too")
        return value

    @field_validator("out")
    @classmethod
    def _jsonl_out(cls, value: str) -> str:
        if not value.endswith(".jsonl"):
            raise ValueError(
                f"must end with .jsonl (the format the SFT trainer reads), got {value}"
            )
        return value


def build_baked_dataset(config: BakeConfig, on_progress: OnProgress | None = None) -> BakeResult:
    """Read the sources, bake, and write `config.out` plus `<out>.card.json`, whole or not at
    all; any bad row or option stops it before anything is written."""
    out = Path(config.out)
    refuse_existing(out)
    say = on_progress or (lambda *_: None)
    say("reading data", 0, 0, {})
    dialogues = load_dialogues(config.data, config.limit, config.skip_bad_rows, "data")
    mix = (
        load_dialogues(config.mix_data, None, config.skip_bad_rows, "mix_data")
        if config.mix_data
        else []
    )
    voiced = config.mix_replies != "corpus"
    if voiced or config.mix_everyday:  # one model load answers both
        everyday = (
            [
                [{"role": "user", "content": t}]
                for t in everyday_sample(everyday_prompts(), config.mix_everyday_rows, config.seed)
            ]
            if config.mix_everyday
            else []
        )
        own, own_everyday = model_replies([mix if voiced else [], everyday], config, on_progress)
        mix = voiced_mix(mix, own, config.mix_replies) + own_everyday
    say(f"loading classifier {config.classifier}", 0, 0, {})
    from alignloop.safety.classifiers import load_classifier

    classifier = load_classifier(config.classifier, config.db)
    result = bake_dialogues(
        dialogues,
        classifier,
        config.threshold,
        config.canned_reply,
        config.seed,
        mix,
        config.mix_weight,
        config.chunk_size,
        on_progress,
        config.canned_turns,
    )
    card = {
        "format": CARD_FORMAT,
        "kind": "baked-safety",
        "counts": result.counts(),
        "classifier": classifier.name,
        "classifier_source": config.classifier,
        "threshold": config.threshold,
        "canned_reply": config.canned_reply,
        "canned_turns": config.canned_turns,
        "seed": config.seed,
        "sources": {"data": config.data, "mix_data": config.mix_data},
        "mix_replies": config.mix_replies,
        "mix_everyday": config.mix_everyday,
        "mix_everyday_rows": config.mix_everyday_rows,
        "mix_model": config.mix_model if voiced or config.mix_everyday else None,
        "mix_temperature": config.mix_temperature,
        "limit": config.limit,
        "mix_weight": config.mix_weight,
    }
    say("writing", 0, 0, {})
    write_baked(result, out, card)
    return result


def model_replies(
    mixes: Sequence[Sequence[Sequence[Message]]],
    config: BakeConfig,
    on_progress: OnProgress | None,
) -> list[list[list[Message]]]:
    """`own_voice` of each mix with the config's model, loaded once for them and closed after."""
    from alignloop.backends import load_backend
    from alignloop.backends.base import GenerationParams

    if on_progress:
        on_progress(f"loading model {config.mix_model}", 0, 0, {})
    backend = load_backend(config.mix_model)
    params = GenerationParams(
        max_new_tokens=config.mix_max_new_tokens, temperature=config.mix_temperature,
        seed=config.seed,
    )  # fmt: skip
    try:
        return [own_voice(mix, backend, params, on_progress=on_progress) for mix in mixes]
    finally:
        backend.close()


def card_path(out: Path) -> Path:
    return out.with_name(out.name + ".card.json")


def refuse_existing(out: Path) -> None:
    if out.exists():
        raise Conflict(
            f"option 'out': {out} already exists; choose a new out path (or delete that file)",
            "out",
        )


def write_baked(result: BakeResult, out: Path, card: dict[str, Any]) -> None:
    result.card = write_rows_and_card(result.rows, out, card)
    result.out = out


def write_rows_and_card(rows: list[dict], out: Path, card: dict[str, Any]) -> dict[str, Any]:
    """The rows as JSONL and a card beside them (<out>.card.json, with the row count and the
    file's sha256), each written to a temporary file and then moved into place; an `out` that
    appeared meanwhile is never overwritten. Returns the card as written."""
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    payload = text.encode("utf-8")
    card = {**card, "rows": len(rows), "sha256": hashlib.sha256(payload).hexdigest()}
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    partial.write_bytes(payload)
    try:
        os.link(partial, out)  # fails, rather than overwrite, where out exists
    except FileExistsError:
        refuse_existing(out)
    except OSError:  # a filesystem without hard links
        refuse_existing(out)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    card_file = card_path(out)
    partial_card = card_file.with_name(f".{card_file.name}.partial-{os.getpid()}")
    partial_card.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(partial_card, card_file)
    return card
