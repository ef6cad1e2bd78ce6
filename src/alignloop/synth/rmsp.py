"""ALMoST's reward-model-guided self-play (RMSP, SPEC.md §5), and the prompts of RLSF.

Two prompted models talk: the *user* model continues a dialogue as a curious user (its first
turn is a given synthetic query), the *assistant* model (the policy) answers. At every
assistant turn `candidates` replies are sampled and the synthetic reward model scores each one
after the dialogue so far; the highest-scored reply is kept. The finished dialogues are SFT rows
(`{"messages": [...], "meta": {...}}`) for `alignloop train sft`.

How the user model is prompted (DESIGN): it sees the dialogue with the roles swapped (its own
turns as "assistant", the assistant's as "user") after a system prompt asking it to write the
user's next message, so that any chat model plays the user without a special template.
Generated turns are cleaned (`clean_turn`): role markers in front are stripped, a turn the model
invents after its own is cut, a turn cut off by the token limit ends at its last full sentence;
an empty user turn ends the dialogue.

RLSF needs no trainer of its own: `alignloop train ppo --reward-model SYNTH_RM --data PROMPTS`
is PPO against the synthetic reward model. `write_rlsf_prompts` writes PROMPTS from the
synthetic queries that RMSP (or an evaluation set) did not use.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from alignloop.backends.base import Backend, ChatMessage, Completion, GenerationParams
from alignloop.config import Settings
from alignloop.errors import ConfigError, InvalidInput

Scorer = Callable[[list[list[ChatMessage]], list[str]], Sequence[float]]
"""Scores replies after their dialogues (higher is better): the reward model by default."""

ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""on_progress(dialogues done, dialogues to do, running metrics)."""

MAX_REPORTED = 10  # bad query rows listed in one error

DEFAULT_USER_PROMPT = (
    "You are a curious person chatting with an AI assistant. The assistant's messages are "
    "shown to you as the other side of the conversation. Write your next message to the "
    "assistant: a short follow-up question or request on the same topic, in one or two "
    "sentences. Write only your own message, without a name or role in front of it."
)

_LEADING_MARKER = re.compile(
    r"^\s*(?:<\|im_start\|>\s*\w+\s*|(?:user|human|me|assistant|ai|bot)\s*:\s*)", re.IGNORECASE
)
_INVENTED_TURN = re.compile(
    r"<\|im_(?:start|end)\|>|\n\s*(?:user|human|assistant|ai|bot|system)\s*:"
    r"|\b(?:user|human|assistant)\s*:",
    re.IGNORECASE,
)
_QUOTES = ('"', "\u201c\u201d")
_SENTENCE_END = re.compile(r"[.!?][\"')\]\u201d]*(?=\s|$)")


class RmspConfig(Settings):
    """Reward-model-guided self-play (ALMoST RMSP): a prompted user model and the assistant
    model talk; at each assistant turn the synthetic reward model picks the best of N sampled
    replies. Writes SFT rows for `alignloop train sft`; a rerun skips finished dialogues."""

    queries: str = Field(
        ...,
        description="Synthetic queries that open the dialogues: JSONL (or .json/.parquet) rows "
        "with 'query' or 'prompt' (and optionally 'id'), or a text file of one query per line "
        "(e.g. the output of `alignloop synth queries`).",
    )
    reward_model: str = Field(
        ...,
        description="Folder of the synthetic reward model (`alignloop train reward` on the "
        "synthetic comparisons) that picks the best candidate.",
    )
    out: str = Field(
        "runs/synth/rmsp.jsonl",
        description="SFT JSONL the dialogues are appended to, one per query (its finished "
        "queries are skipped on a rerun); dialogues that end before any assistant turn are "
        "noted in <out stem>.dropped.jsonl.",
    )
    assistant_model: str = Field(
        "smollm2",
        description="The policy playing the assistant: 'smollm2', 'tiny', a model folder, a hub "
        "id or a trained version folder.",
    )
    user_model: str = Field(
        "smollm2",
        description="The prompted model playing the user (the same model is loaded once when "
        "both are equal).",
    )
    user_prompt: str = Field(
        DEFAULT_USER_PROMPT,
        description="System prompt of the user model (it sees the dialogue with roles swapped).",
    )
    assistant_prompt: str | None = Field(
        None,
        description="Optional system prompt of the assistant while it samples; it is not "
        "written into the SFT rows (the tuned model learns the prompted behaviour).",
    )
    candidates: int = Field(
        4, ge=1, le=64, description="Replies sampled per assistant turn (ALMoST: N = 4)."
    )
    turns: int = Field(3, ge=1, le=32, description="Assistant turns per dialogue, at most.")
    temperature: float = Field(
        1.0, gt=0, le=2, description="Sampling temperature of the assistant's candidates."
    )
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus mass of the assistant's candidates.")
    max_new_tokens: int = Field(
        128,
        ge=1,
        description="Longest assistant reply in tokens (a reply cut by it ends at its last "
        "full sentence).",
    )
    user_temperature: float = Field(1.0, gt=0, le=2, description="User model temperature.")
    user_top_p: float = Field(0.9, gt=0, le=1, description="User model nucleus mass.")
    user_max_new_tokens: int = Field(
        64, ge=1, description="Longest user turn in tokens (cut as the assistant's)."
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="Dialogues played at once; they are appended to out together (a crash "
        "loses at most one batch).",
    )
    score_batch_size: int = Field(16, ge=1, description="Replies the reward model scores at once.")
    keep_candidates: bool = Field(
        False, description="Also write every candidate's text into meta (for analysis)."
    )
    device: str = Field("cpu", description="Torch device of the local models.")
    seed: int = Field(0, description="Seed of sampling (each batch and turn derives its own).")
    limit: int | None = Field(
        None, ge=1, description="Play only the first N queries of the file (finished included)."
    )


class RlsfPromptsConfig(Settings):
    """Write the PPO prompts of RLSF (`alignloop train ppo --reward-model SYNTH_RM --data OUT`):
    synthetic queries that RMSP dialogues and evaluation sets did not use."""

    queries: str = Field(..., description="Synthetic queries (same formats as `synth rmsp`).")
    exclude: str | None = Field(
        None,
        description="Comma-separated files whose queries are left out: RMSP outputs (their "
        "meta.query_id / meta.query) or query files (e.g. a held-out evaluation set).",
    )
    out: str = Field(
        "runs/synth/rlsf-prompts.jsonl", description='Prompts JSONL: {"prompt", "id"}.'
    )
    limit: int | None = Field(None, ge=1, description="Write at most this many prompts.")


# --- queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    id: str
    text: str


def query_id(text: str) -> str:
    """A stable id for a query without one: a short hash of its text."""
    return "q-" + hashlib.sha1(text.strip().encode()).hexdigest()[:12]


def _is_table(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith((".jsonl", ".jsonl.gz", ".json", ".parquet"))


def _query_from_row(row: Any) -> Query:
    """One query from a table row; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("must be an object with 'query' or 'prompt'")
    text = row.get("query", row.get("prompt"))
    if not isinstance(text, str) or not text.strip():
        raise ValueError("needs 'query' (or 'prompt'): a non-empty string")
    given = row.get("id")
    if given is not None and (isinstance(given, bool) or not isinstance(given, str | int)):
        raise ValueError("'id' must be a string or an integer")
    return Query(str(given) if given is not None else query_id(text), text.strip())


def _table_queries(path: Path) -> Iterable[tuple[int, Query | str]]:
    """(row number, query or the problem of that row); JSONL rows count as lines."""
    from alignloop.train.data import _BadJSON, read_rows

    for n, row in enumerate(read_rows(path), 1):
        if row is None:
            continue
        if isinstance(row, _BadJSON):
            yield n, row.problem
            continue
        try:
            yield n, _query_from_row(row)
        except ValueError as exc:
            yield n, str(exc)


def _text_queries(path: Path) -> Iterable[tuple[int, Query | str]]:
    with open(path, encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if line.strip():
                yield n, Query(query_id(line), line.strip())


def load_queries(path: str | Path, limit: int | None = None) -> list[Query]:
    """The queries of a file in order, duplicates (same id and text) once. Bad rows, an id
    given to two different texts, or no queries at all raise `InvalidInput` on 'queries'."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(
            f"queries file {path} does not exist; write one with `alignloop synth queries` or "
            'give JSONL rows {"query": "..."} or a text file with one query per line',
            "queries",
        )
    try:
        rows = list(_table_queries(path) if _is_table(path) else _text_queries(path))
    except InvalidInput as exc:  # the file as a whole is unreadable (e.g. JSON but not a list)
        raise InvalidInput(exc.message, "queries") from exc
    queries: dict[str, Query] = {}
    problems: list[str] = []
    for n, got in rows:
        if isinstance(got, str):
            problems.append(f"line {n}: {got}")
        elif got.id in queries and queries[got.id].text != got.text:
            problems.append(f"line {n}: id {got.id!r} is already used by another query")
        elif limit is None or len(queries) < limit:
            queries.setdefault(got.id, got)
    _raise_on_problems(path, problems)
    if not queries:
        raise InvalidInput(
            f"queries file {path} holds no queries; generate some with `alignloop synth queries`",
            "queries",
        )
    return list(queries.values())


def _raise_on_problems(path: Path, problems: list[str]) -> None:
    if not problems:
        return
    more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
    raise InvalidInput(
        f"queries file {path}: {len(problems)} bad row(s): {'; '.join(problems[:MAX_REPORTED])}"
        f"{more}. Fix or remove these rows: each needs a non-empty 'query' (or 'prompt') "
        "string",
        "queries",
    )


# --- cleaning turns -------------------------------------------------------------------------


def _strip_quotes(text: str) -> str:
    for quote in _QUOTES:
        opening, closing = (quote[0], quote[-1])
        if len(text) >= 2 and text.startswith(opening) and text.endswith(closing):
            return text[1:-1].strip()
    return text


def _last_full_sentence(text: str) -> str:
    """`text` up to its last sentence end (unchanged when it has none)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


def clean_turn(text: str, cut_off: bool = False) -> str:
    """A generated turn without role markers in front, cut before any turn the model went on
    to invent ("\\nAssistant: ..."), without wrapping quotes; "" when nothing is left. A turn
    `cut_off` by the token limit (and not by an invented turn) ends at its last full sentence."""
    text = text.strip()
    while match := _LEADING_MARKER.match(text):
        text = text[match.end() :].strip()
    invented = _INVENTED_TURN.search(text)
    if invented:
        text = text[: invented.start()]
    elif cut_off:
        text = _last_full_sentence(text)
    return _strip_quotes(text.strip())


def _cleaned(completion: Completion) -> str:
    return clean_turn(completion.text, cut_off=completion.finish_reason == "length")


# --- dialogues ------------------------------------------------------------------------------


@dataclass
class Dialogue:
    query: Query
    messages: list[ChatMessage]
    turns: list[dict] = field(default_factory=list)
    ended: str | None = None  # why it stopped: "turns", "empty_user_turn", "no_candidate"

    @classmethod
    def opened_by(cls, query: Query) -> Dialogue:
        return cls(query, [{"role": "user", "content": query.text}])

    @property
    def active(self) -> bool:
        return self.ended is None

    def row(self, models: dict[str, str]) -> dict:
        """The SFT row: the messages up to the last assistant turn, where they came from in
        meta."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        meta = {"query_id": self.query.id, "query": self.query.text, "ended": self.ended}
        return {
            "messages": self.messages[: last + 1],
            "meta": {**meta, **models, "turns": self.turns},
        }


def user_view(messages: list[ChatMessage], system_prompt: str) -> list[ChatMessage]:
    """The dialogue as the user model sees it: roles swapped after its system prompt, so that
    it answers the assistant's last message in the user's place."""
    swap = {"user": "assistant", "assistant": "user"}
    swapped = [{"role": swap[m["role"]], "content": m["content"]} for m in messages]
    return [{"role": "system", "content": system_prompt}, *swapped]


def assistant_view(messages: list[ChatMessage], system_prompt: str | None) -> list[ChatMessage]:
    if not system_prompt:
        return list(messages)
    return [{"role": "system", "content": system_prompt}, *messages]


def best_candidate(scores: Sequence[float | None]) -> int | None:
    """Index of the highest score (the first on ties); None when no candidate was scored."""
    scored = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(scored)[1] if scored else None


def call_seed(base: int, *parts: object) -> int:
    """A seed per generation call that depends on what is generated, not on the order of
    calls, so that a resumed run samples what an uninterrupted one would have."""
    return zlib.crc32(json.dumps([base, *map(str, parts)]).encode()) & 0x7FFFFFFF


@dataclass
class Players:
    assistant: Backend
    user: Backend
    scorer: Scorer


def _assistant_params(config: RmspConfig, seed: int) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        n=config.candidates,
        seed=seed,
    )


def _user_params(config: RmspConfig, seed: int) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=config.user_max_new_tokens,
        temperature=config.user_temperature,
        top_p=config.user_top_p,
        n=1,
        seed=seed,
    )


def _score_candidates(
    dialogues: list[Dialogue], candidates: list[list[str]], scorer: Scorer
) -> list[list[float | None]]:
    """Every non-empty candidate scored after its dialogue in one scorer call (None: empty)."""
    asked = [(d, i, j) for i, d in enumerate(dialogues) for j, c in enumerate(candidates[i]) if c]
    scores: list[list[float | None]] = [[None] * len(c) for c in candidates]
    if asked:
        got = scorer([d.messages for d, _, _ in asked], [candidates[i][j] for _, i, j in asked])
        for (_, i, j), score in zip(asked, got, strict=True):
            scores[i][j] = float(score)
    return scores


def assistant_turn(
    dialogues: list[Dialogue], players: Players, config: RmspConfig, seed: int
) -> None:
    """Sample N replies per dialogue, score them, keep the best (or end: none non-empty)."""
    contexts = [assistant_view(d.messages, config.assistant_prompt) for d in dialogues]
    sampled = players.assistant.generate(contexts, _assistant_params(config, seed))
    candidates = [[_cleaned(c) for c in completions] for completions in sampled]
    scores = _score_candidates(dialogues, candidates, players.scorer)
    for dialogue, texts, turn_scores in zip(dialogues, candidates, scores, strict=True):
        chosen = best_candidate(turn_scores)
        if chosen is None:
            dialogue.ended = "no_candidate"
            continue
        record = {"chosen": chosen, "score": turn_scores[chosen], "candidate_scores": turn_scores}
        if config.keep_candidates:
            record["candidates"] = texts
        dialogue.turns.append(record)
        dialogue.messages.append({"role": "assistant", "content": texts[chosen]})


def user_turn(dialogues: list[Dialogue], players: Players, config: RmspConfig, seed: int) -> None:
    """The user model's next message per dialogue, cleaned; an empty one ends the dialogue."""
    contexts = [user_view(d.messages, config.user_prompt) for d in dialogues]
    replies = players.user.generate(contexts, _user_params(config, seed))
    for dialogue, completions in zip(dialogues, replies, strict=True):
        text = _cleaned(completions[0])
        if text:
            dialogue.messages.append({"role": "user", "content": text})
        else:
            dialogue.ended = "empty_user_turn"


def play(queries: list[Query], players: Players, config: RmspConfig) -> list[Dialogue]:
    """Self-play of one batch of queries, up to `config.turns` assistant turns each."""
    dialogues = [Dialogue.opened_by(q) for q in queries]
    key = queries[0].id
    for turn in range(config.turns):
        active = [d for d in dialogues if d.active]
        if not active:
            break
        assistant_turn(active, players, config, call_seed(config.seed, key, turn, "assistant"))
        active = [d for d in active if d.active]
        if turn + 1 < config.turns and active:
            user_turn(active, players, config, call_seed(config.seed, key, turn, "user"))
    for dialogue in dialogues:
        dialogue.ended = dialogue.ended or "turns"
    return dialogues


# --- output and resuming ------------------------------------------------------------------


def dropped_path(out: Path) -> Path:
    """Where dialogues without any assistant turn are noted (so a rerun skips them too)."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".dropped.jsonl")


def _complete_lines(path: Path) -> list[str]:
    """The file's complete lines; a last line cut short by a crash is not one of them."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return text[: text.rfind("\n") + 1].splitlines()


def _trim_partial_line(path: Path) -> None:
    """Drop a last line that a crash left without its newline before appending after it."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)


def finished_ids(out: Path) -> set[str]:
    """Query ids whose dialogue is in `out` or its dropped file; a line that is not an RMSP
    row raises `InvalidInput` on 'out' rather than being overwritten or guessed at."""
    done: set[str] = set()
    for path in (out, dropped_path(out)):
        for n, line in enumerate(_complete_lines(path), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                done.add(str(row["meta"]["query_id"] if "meta" in row else row["query_id"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InvalidInput(
                    f"{path} line {n} is not an RMSP row ({type(exc).__name__}); choose another "
                    "out or move the file away",
                    "out",
                ) from exc
    return done


def append_dialogues(out: Path, dialogues: list[Dialogue], models: dict[str, str]) -> None:
    """Append a batch in one write per file: dialogues with an assistant turn as SFT rows,
    the rest (ended before the first assistant turn) to the dropped file."""
    kept = [d.row(models) for d in dialogues if d.turns]
    dropped = [{"query_id": d.query.id, "ended": d.ended} for d in dialogues if not d.turns]
    for path, rows in ((out, kept), (dropped_path(out), dropped)):
        if rows:
            with open(path, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _check_out(out: Path) -> None:
    if out.is_dir() or not out.name.endswith(".jsonl"):
        raise ConfigError(f"out {out} must be a .jsonl file path (not a folder)", "out")


def check_reward_model(folder: str) -> None:
    """A clear error unless `folder` holds a reward model trained by `alignloop train reward`."""
    from alignloop.backends.models import version_info
    from alignloop.train.algorithms.reward import HEAD

    path = Path(folder)
    hint = (
        "train one with `alignloop train reward --data PAIRS --out FOLDER` (e.g. on the "
        "pairs of `alignloop synth comparisons`) and pass that folder"
    )
    if not path.is_dir():
        raise ConfigError(f"reward_model {folder}: no such folder; {hint}", "reward_model")
    if HEAD not in version_info(path).get("heads", []):
        raise ConfigError(f"reward_model {folder} is not a reward model; {hint}", "reward_model")


# --- the run --------------------------------------------------------------------------------


@dataclass
class RmspResult:
    out: Path
    written: int  # dialogues appended this run
    skipped: int  # finished before this run
    dropped: int  # ended before any assistant turn (noted in the dropped file)
    assistant_turns: int
    mean_chosen_score: float | None
    mean_candidate_score: float | None
    ended: dict[str, int] = field(default_factory=dict)


class _Tally:
    """Running metrics of a run (for the progress bar and the result)."""

    def __init__(self) -> None:
        self.written = self.dropped = self.assistant_turns = 0
        self.chosen: list[float] = []
        self.candidates: list[float] = []
        self.ended: dict[str, int] = {}

    def add(self, dialogues: list[Dialogue]) -> None:
        for d in dialogues:
            self.written += bool(d.turns)
            self.dropped += not d.turns
            self.ended[d.ended or "turns"] = self.ended.get(d.ended or "turns", 0) + 1
            for turn in d.turns:
                self.assistant_turns += 1
                self.chosen.append(turn["score"])
                self.candidates.extend(s for s in turn["candidate_scores"] if s is not None)

    def metrics(self) -> dict[str, float]:
        if not self.chosen:
            return {}
        chosen = sum(self.chosen) / len(self.chosen)
        return {"chosen": chosen, "gain": chosen - sum(self.candidates) / len(self.candidates)}

    def result(self, out: Path, skipped: int) -> RmspResult:
        return RmspResult(
            out, self.written, skipped, self.dropped, self.assistant_turns,
            _mean(self.chosen), _mean(self.candidates), dict(self.ended),
        )  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def reward_model_scorer(config: RmspConfig) -> Scorer:
    """The synthetic reward model as a scorer (it sees the dialogue before each reply)."""
    from alignloop.evaluate.reward import reward_scores

    def score(prompts: list[list[ChatMessage]], replies: list[str]) -> Sequence[float]:
        return reward_scores(config.reward_model, prompts, replies, config.score_batch_size)

    return score


def load_players(config: RmspConfig, scorer: Scorer | None) -> Players:
    from alignloop.backends import load_backend

    assistant = load_backend(config.assistant_model, device=config.device)
    same = config.user_model == config.assistant_model
    user = assistant if same else load_backend(config.user_model, device=config.device)
    return Players(assistant, user, scorer or reward_model_scorer(config))


def _batches(items: list[Query], size: int) -> Iterable[list[Query]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_rmsp(
    config: RmspConfig,
    scorer: Scorer | None = None,
    players: Players | None = None,
    on_progress: ProgressCallback | None = None,
) -> RmspResult:
    """Play the dialogues of every query not finished in `config.out` and append them.
    Every input is checked before anything is loaded or written. `scorer` replaces the
    reward model (tests, other judges); `players` replaces the models altogether."""
    out = Path(config.out)
    _check_out(out)
    queries = load_queries(config.queries, config.limit)
    if scorer is None and players is None:
        check_reward_model(config.reward_model)
    done = finished_ids(out)
    todo = [q for q in queries if q.id not in done]
    tally = _Tally()
    if on_progress:
        on_progress(0, len(todo), {})
    if todo:
        players = players or load_players(config, scorer)
        out.parent.mkdir(parents=True, exist_ok=True)
        _trim_partial_line(out)
        _trim_partial_line(dropped_path(out))
        models = {
            "assistant_model": config.assistant_model,
            "user_model": config.user_model,
            "reward_model": config.reward_model,
        }
        for batch in _batches(todo, config.batch_size):
            dialogues = play(batch, players, config)
            append_dialogues(out, dialogues, models)
            tally.add(dialogues)
            if on_progress:
                on_progress(tally.written + tally.dropped, len(todo), tally.metrics())
    return tally.result(out, len(queries) - len(todo))


# --- RLSF -----------------------------------------------------------------------------------


def used_queries(path: str | Path) -> tuple[set[str], set[str]]:
    """(ids, texts) of the queries a file used: an RMSP output (meta.query_id, meta.query) or
    a queries file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"exclude file {path} does not exist", "exclude")
    if path.name.endswith(".jsonl") and _is_rmsp_output(path):
        finished = finished_ids(path)
        rows = [json.loads(line) for line in _complete_lines(path) if line.strip()]
        return finished, {str(row["meta"].get("query")) for row in rows}
    queries = load_queries(path)
    return {q.id for q in queries}, {q.text for q in queries}


def _is_rmsp_output(path: Path) -> bool:
    """Whether a JSONL file's first row is an RMSP dialogue (it has meta.query_id)."""
    first = next((line for line in _complete_lines(path) if line.strip()), None)
    try:
        row = json.loads(first) if first else None
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and isinstance(row.get("meta"), dict) and "query_id" in row["meta"]


def rlsf_queries(config: RlsfPromptsConfig) -> list[Query]:
    """The synthetic queries left for RLSF: those no `exclude` file used, in file order."""
    queries = load_queries(config.queries)
    ids: set[str] = set()
    texts: set[str] = set()
    for name in filter(None, (p.strip() for p in (config.exclude or "").split(","))):
        used_ids, used_texts = used_queries(name)
        ids |= used_ids
        texts |= used_texts
    left = [q for q in queries if q.id not in ids and q.text not in texts]
    if not left:
        raise InvalidInput(
            f"every query of {config.queries} is used by an exclude file; generate more with "
            "`alignloop synth queries`",
            "queries",
        )
    return left[: config.limit] if config.limit else left


def write_rlsf_prompts(config: RlsfPromptsConfig) -> int:
    """Write the PPO prompts file (`prompts` rows: {"prompt", "id"}); the count written."""
    queries = rlsf_queries(config)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        "".join(
            json.dumps({"prompt": q.text, "id": q.id}, ensure_ascii=False) + "\n" for q in queries
        ),
        encoding="utf-8",
    )
    tmp.replace(out)
    return len(queries)
