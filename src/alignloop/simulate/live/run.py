"""Run a simulated population against a live server, and measure a served model.

`simulate` drives `config.users` users for `config.turns` turns each, `config.concurrency` at a
time (a thread per user in flight), and writes into `config.out`:

- `replies.jsonl`: one line per bot reply, the ground truth kept aside (never in the store):
  the user (index, pseudonym, type, red-teaming), conversation and message ids, the model
  version the API named, the prompt's kind and source, the user's turn, the reply, the gold
  verdict (good, unsafe, category, reasons, similarity, relevance), the feedback posted (kind,
  reason, text, honest, text_good) and the red-team label posted (label, honest);
- `users.jsonl`: one line per user: index, pseudonym, type, SafetyMix name, red-teaming,
  turns taken, error (if their session stopped early);
- `summary.json`: good-response and unsafe rates by the gold judge, overall, by user type, by
  prompt kind and by model version; feedback counts; errors; and the measurement, if asked.

`measure` asks a fixed prompt set once each (single-turn, greedy by default) as a user who does
not consent to training, and scores the replies with the gold judge: the loop's before/after
figure. `heldout_prompts` (prompts.py) gives it prompts no simulated user ever sends.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from alignloop.errors import AlignloopError
from alignloop.simulate.live.client import LiveClient, Retry, check_server
from alignloop.simulate.live.config import SAFETYMIX_NAMES, USER_TYPES, SimulateLiveConfig
from alignloop.simulate.live.gold import GoldJudge, is_adversarial_turn
from alignloop.simulate.live.prompts import Prompt, heldout_prompts, prompt_pools
from alignloop.simulate.live.users import Persona, UserSession, assign_personas

OnProgress = Callable[[int, int], None]
"""Called as (turns done, turns in all) while the simulation runs."""

REPLIES_FILE = "replies.jsonl"
USERS_FILE = "users.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class SimulationResult:
    summary: dict[str, Any]
    out: Path

    @property
    def replies_path(self) -> Path:
        return self.out / REPLIES_FILE

    @property
    def users_path(self) -> Path:
        return self.out / USERS_FILE

    @property
    def summary_path(self) -> Path:
        return self.out / SUMMARY_FILE


class Recorder:
    """Appends reply records to replies.jsonl from many threads, keeps them for the summary,
    and reports progress."""

    def __init__(self, path: Path, total: int, on_progress: OnProgress | None):
        self.path, self.total, self.on_progress = path, total, on_progress
        self.records: list[dict[str, Any]] = []
        self.done = 0
        self._lock = threading.Lock()
        self._file = path.open("w", encoding="utf-8")

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._file.flush()
            self.records.append(row)
            self._advance(1)

    def skip(self, turns: int) -> None:
        """Turns a user will not take (their session stopped): progress still reaches 100%."""
        with self._lock:
            self._advance(turns)

    def _advance(self, turns: int) -> None:
        self.done += turns
        if self.on_progress:
            self.on_progress(self.done, self.total)

    def close(self) -> None:
        self._file.close()


def simulate(
    config: SimulateLiveConfig,
    on_progress: OnProgress | None = None,
    judge: GoldJudge | None = None,
) -> SimulationResult:
    """Run the population against `config.server`; ConfigError naming `server` if no healthy
    server answers there."""
    started = time.perf_counter()
    info = check_server(config.server, config.startup_wait)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    judge = judge or GoldJudge()
    pools = prompt_pools(config.heldout_share, config.reserved_eval_prompts)
    personas = assign_personas(config, secrets.token_hex(4))
    recorder = Recorder(out / REPLIES_FILE, config.users * config.turns, on_progress)
    sessions: list[dict[str, Any]] = []

    def run_user(persona: Persona) -> dict[str, Any]:
        client = LiveClient(config.server, persona.token, config.request_timeout, _retry(config))
        with client:
            session = UserSession(
                persona, config, pools, judge, client, info.redteam, recorder.record
            )
            return _run_session(session, recorder, config.turns)

    try:
        with ThreadPoolExecutor(config.concurrency, thread_name_prefix="simuser") as pool:
            sessions = list(pool.map(run_user, personas))
    finally:
        recorder.close()
    _write_users(out / USERS_FILE, personas, sessions)
    summary = summarize(recorder.records, personas, sessions)
    summary["run"] = _run_facts(config, info.model, info.redteam, time.perf_counter() - started)
    if config.measure_prompts:
        prompts = heldout_prompts(
            config.measure_prompts,
            config.measure_adversarial_share,
            config.heldout_share,
            config.seed,
            config.reserved_eval_prompts,
        )
        summary["measure"] = measure(
            config.server, prompts, judge, max_tokens=config.max_tokens, seed=config.seed
        )
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return SimulationResult(summary, out)


def _retry(config: SimulateLiveConfig) -> Retry:
    return Retry(config.max_retries, config.retry_backoff)


def _run_session(session: UserSession, recorder: Recorder, turns: int) -> dict[str, Any]:
    """Run one user; a failure stops that user only and is reported in the summary."""
    taken_before = len(recorder.records)
    try:
        session.run()
        return {"pseudonym": session.pseudonym, "error": None}
    except (AlignloopError, httpx.HTTPError) as exc:
        taken = sum(
            1 for r in recorder.records[taken_before:] if r["user"] == session.persona.index
        )
        recorder.skip(max(0, turns - taken))
        return {"pseudonym": session.pseudonym, "error": f"{type(exc).__name__}: {exc}"}


def _write_users(path: Path, personas: list[Persona], sessions: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as file:
        for persona, session in zip(personas, sessions, strict=True):
            row = {
                "user": persona.index,
                "pseudonym": session["pseudonym"],
                "user_type": persona.kind,
                "safetymix": SAFETYMIX_NAMES[persona.kind],
                "redteam": persona.redteam,
                "error": session["error"],
            }
            file.write(json.dumps(row) + "\n")


def _run_facts(config: SimulateLiveConfig, model: str, redteam: bool, seconds: float) -> dict:
    return {
        "config": config.model_dump(),
        "server_model": model,
        "redteam_api": redteam,
        "seconds": round(seconds, 2),
    }


# --- summary figures ----------------------------------------------------------------------------


def needless_deflection(record: dict[str, Any]) -> bool:
    """Whether the gold judge found a reply record a refusal or canned reply to a harmless turn."""
    return "needless_deflection" in record["gold"].get("reasons", ())


def rates(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """{n, good_rate, unsafe_rate, deflected_rate} of reply records by their gold verdicts;
    deflected: a refusal or canned reply to a harmless turn (the dull side of safety)."""
    rows = list(rows)
    n = len(rows)
    good = sum(r["gold"]["good"] for r in rows)
    unsafe = sum(r["gold"]["unsafe"] for r in rows)
    deflected = sum(map(needless_deflection, rows))
    return {
        "n": n,
        "good_rate": good / n if n else None,
        "unsafe_rate": unsafe / n if n else None,
        "deflected_rate": deflected / n if n else None,
    }


def _grouped(rows: list[dict[str, Any]], key: str, order: Sequence[str] = ()) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row[key])].append(row)
    names = [k for k in order if k in groups] + sorted(set(groups) - set(order))
    return {name: rates(groups[name]) for name in names}


def feedback_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    posted = [r["feedback"] for r in rows if r["feedback"]]
    counts = Counter(f["kind"] for f in posted)
    labels = [r["safety_label"] for r in rows if r["safety_label"]]
    return {
        "like": counts["like"],
        "dislike": counts["dislike"],
        "dislike_with_text": sum(1 for f in posted if f["kind"] == "dislike" and f["text"]),
        "sensitive_agree": counts["sensitive_agree"],
        "sensitive_disagree": counts["sensitive_disagree"],
        "safety_labels": len(labels),
        "dishonest_feedback": sum(1 for f in posted if not f["honest"]),
        "dishonest_labels": sum(1 for label in labels if not label["honest"]),
    }


def summarize(
    rows: list[dict[str, Any]], personas: list[Persona], sessions: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "overall": rates(rows),
        "by_user_type": _grouped(rows, "user_type", USER_TYPES),
        "by_prompt_kind": _grouped(rows, "prompt_kind", ("benign", "adversarial", "toxic")),
        "by_model_version": _grouped(rows, "model_version"),
        "categories": dict(Counter(r["gold"]["category"] for r in rows).most_common()),
        "feedback": feedback_counts(rows),
        "users": dict(Counter(p.kind for p in personas)),
        "redteam_users": sum(p.redteam for p in personas),
        "errors": [
            {"user": p.index, "error": s["error"]}
            for p, s in zip(personas, sessions, strict=True)
            if s["error"]
        ],
    }


# --- the before/after measurement ---------------------------------------------------------------


def measure(
    server_url: str,
    prompts: Sequence[Prompt | str],
    gold: GoldJudge,
    *,
    max_tokens: int = 48,
    temperature: float = 0.0,
    seed: int = 0,
    concurrency: int = 1,
    timeout: float = 300.0,
    retry: Retry = Retry(5, 1.0),
) -> dict[str, Any]:
    """Ask each prompt once, in its own conversation, and score the replies with `gold`:
    {good_rate, unsafe_rate, n, model, by_kind: {benign, adversarial: {n, good_rate,
    unsafe_rate}}, replies: [{prompt, reply, adversarial, gold}]}. The measuring user does not
    consent to training, so these turns stay out of every training set built from the store."""
    info = check_server(server_url, 0.0)
    items = [p if isinstance(p, Prompt) else Prompt(p) for p in prompts]
    token = f"simlive-measure-{secrets.token_hex(6)}"
    with LiveClient(server_url, token, timeout, retry) as client:
        client.consent(training=False)

        def ask(prompt: Prompt) -> dict[str, Any]:
            context = [{"role": "user", "content": prompt.text}]
            reply = client.chat(context, None, "chat", max_tokens, temperature, seed)
            verdict = gold.judge(context, reply.text, prompt.adversarial)
            return {
                "prompt": prompt.text,
                "reply": reply.text,
                "adversarial": _is_adversarial(prompt),
                "gold": verdict.as_record(),
            }

        with ThreadPoolExecutor(concurrency, thread_name_prefix="measure") as pool:
            rows = list(pool.map(ask, items))
    kinds = defaultdict(list)
    for row in rows:
        kinds["adversarial" if row["adversarial"] else "benign"].append(row)
    by_kind = {k: rates(v) for k, v in kinds.items()}
    return {**rates(rows), "model": info.model, "by_kind": by_kind, "replies": rows}


def _is_adversarial(prompt: Prompt) -> bool:
    if prompt.adversarial is not None:
        return prompt.adversarial
    return is_adversarial_turn(prompt.text)
