"""`alignloop evaluate --models A,B,... --prompts FILE`: compare models pairwise, end to end.

1. check every input before any work (prompt file, models, judge, safety judge, output paths);
   a bad one raises an `alignloop.errors` error naming the option, and nothing is written;
2. generate each model's reply to every prompt (`generate.generate_replies`, greedy by default);
3. judge every pair of models with the one `PairwiseJudge` interface: for models listed in the
   order m0, m1, m2, ... each model is compared with every model listed before it (model_a the
   later one), so with the deployed model first every win rate reads "candidate over deployed";
4. win rates with intervals and Bradley-Terry ratings with bootstrap intervals (`ratings.py`),
   good-response rate and error categories (`quality.py`), unsafe rate by a safety classifier,
   canned-reply rate on the benign prompts, and the promotion decision of each later model
   against the first (`promotion.py`: better, not less safe, not duller);
5. `report.write_report` writes report.json and report.html into `out`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from alignloop.backends.base import ChatMessage, GenerationParams
from alignloop.errors import AlignloopError, ConfigError, InvalidInput, NotFound
from alignloop.evaluate.config import EvaluateConfig, parse_judge_spec
from alignloop.evaluate.judges import PairwiseJudge
from alignloop.evaluate.promotion import PromotionPolicy, decide_promotion
from alignloop.evaluate.prompts import PROMPT_KINDS, PromptKind
from alignloop.evaluate.quality import ResponseJudge, category_shares, good_response_rate
from alignloop.evaluate.ratings import (
    Battle,
    RatingScale,
    WinRate,
    battles_from_outcomes,
    bootstrap_ratings,
    win_rate_interval,
)
from alignloop.safety.classifiers import REPLY_JUDGES

Progress = Callable[[str, int, int], None]
"""Called as (stage, done, total)."""


# --- inputs -------------------------------------------------------------------------------------


def _prompt_from_row(row: Any, where: str) -> tuple[list[ChatMessage], PromptKind]:
    kind = row.get("kind", "benign") if isinstance(row, dict) else "benign"
    if kind not in PROMPT_KINDS:
        raise InvalidInput(
            f"{where}: 'kind' must be 'benign' or 'adversarial' (or left out: benign), got "
            f"{kind!r}",
            "prompts",
        )
    if isinstance(row, dict) and isinstance(row.get("prompt"), str) and row["prompt"].strip():
        return [{"role": "user", "content": row["prompt"]}], kind
    messages = row.get("messages") if isinstance(row, dict) else None
    if (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        and messages[-1].get("role") == "user"
    ):
        return [{"role": str(m.get("role")), "content": m["content"]} for m in messages], kind
    raise InvalidInput(
        f"{where}: each JSONL row needs a non-empty 'prompt' string, or 'messages' ending "
        "with a user turn",
        "prompts",
    )


def load_marked_prompts(
    path: str | Path, limit: int | None = None
) -> list[tuple[list[ChatMessage], PromptKind]]:
    """(chat prompt, kind) of each prompt of a JSONL file ({"prompt": ...} or {"messages":
    [...]}, with an optional "kind": "benign" or "adversarial", benign where left out) or, for
    any other suffix, a text file with one benign prompt a line (blank lines skipped).

    The kind says what a canned reply means there: on a benign prompt it is a deflection
    (the promotion's dullness check counts them), on an adversarial one it may be right."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"prompt file {path} does not exist; give an existing --prompts", "prompts")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        prompts = []
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}: line {number} is not JSON ({exc})", "prompts") from exc
            prompts.append(_prompt_from_row(row, f"{path}: line {number}"))
    else:
        prompts = [([{"role": "user", "content": line.strip()}], "benign") for line in lines]
    prompts = prompts[:limit] if limit else prompts
    if not prompts:
        raise InvalidInput(f"prompt file {path} holds no prompts", "prompts")
    return prompts


def load_prompt_file(path: str | Path, limit: int | None = None) -> list[list[ChatMessage]]:
    """The chat prompts of `load_marked_prompts`, without their kinds."""
    return [prompt for prompt, _ in load_marked_prompts(path, limit)]


def _check_model(spec: str, field: str) -> None:
    from alignloop.backends.models import resolve_model

    try:
        resolve_model(spec)
    except AlignloopError as exc:
        raise ConfigError(f"{field}: {exc.message}", field) from exc


def _check_judge(spec: str) -> None:
    kind, target = parse_judge_spec(spec)
    if kind == "llm":
        _check_model(target, "judge")
        return
    from alignloop.backends.models import version_info
    from alignloop.train.algorithms.reward import HEAD

    if not Path(target).is_dir() or HEAD not in version_info(target).get("heads", []):
        raise ConfigError(
            f"judge: {target} is not a reward model folder written by `alignloop train reward`",
            "judge",
        )


def _check_output(config: EvaluateConfig) -> None:
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise ConfigError(f"out: {config.out} exists and is not a folder", "out")
    if config.replies_out and Path(config.replies_out).is_dir():
        raise ConfigError(
            f"replies_out: {config.replies_out} is a folder; name a file", "replies_out"
        )


def preflight(config: EvaluateConfig) -> list[tuple[list[ChatMessage], PromptKind]]:
    """Every input checked before any work; the prompts with their kinds."""
    prompts = load_marked_prompts(config.prompts, config.prompts_limit)
    if config.canned_tolerance is not None and all(k != "benign" for _, k in prompts):
        raise ConfigError(
            "canned_tolerance: the dullness check counts canned replies to benign prompts, and "
            f"every prompt of {config.prompts} is marked adversarial; add benign prompts (rows "
            "without 'kind', or 'kind': 'benign') or turn the check off (canned_tolerance: null)",
            "canned_tolerance",
        )
    if config.safety_judge in REPLY_JUDGES and all(k != "adversarial" for _, k in prompts):
        raise ConfigError(
            f"safety_judge: {config.safety_judge!r} judges replies to adversarial prompts, and "
            f'{config.prompts} marks none; mark them ("kind": "adversarial" in JSONL rows) '
            "or name a classifier",
            "safety_judge",
        )
    for model in config.models:
        _check_model(model, "models")
    _check_judge(config.judge)
    _check_output(config)
    if config.safety_judge != "off":
        from alignloop.safety.classifiers import judge_source

        try:
            judge_source(config.safety_judge)
        except AlignloopError as exc:
            raise ConfigError(f"safety_judge: {exc.message}", "safety_judge") from exc
    return prompts


# --- steps --------------------------------------------------------------------------------------


def generate_all(
    config: EvaluateConfig, prompts: Sequence[list[ChatMessage]], on_progress: Progress | None
) -> dict[str, list[str]]:
    """Each model's reply to every prompt, by model spec (one model loaded at a time)."""
    from alignloop.backends import load_backend
    from alignloop.evaluate.generate import generate_replies

    params = GenerationParams(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
    )
    replies = {}
    for model in config.models:
        stage = f"generate {model}"
        step = None if on_progress is None else (lambda d, t, s=stage: on_progress(s, d, t))
        backend = _load(load_backend, model, config.device, "models")
        try:
            replies[model] = generate_replies(backend, prompts, params, config.batch_size, step)
        finally:
            backend.close()
    return replies


def _load(load_backend: Callable, spec: str, device: str, field: str):
    try:
        return load_backend(spec, device=device)
    except OSError as exc:  # e.g. a hub id not in the offline cache
        raise ConfigError(f"{field}: cannot load {spec!r}: {exc}", field) from exc


def build_judge(config: EvaluateConfig) -> PairwiseJudge:
    from alignloop.evaluate.judges import RewardModelJudge

    kind, target = parse_judge_spec(config.judge)
    if kind == "reward":
        return RewardModelJudge(target, config.batch_size)
    from alignloop.backends import load_backend
    from alignloop.evaluate.llm_judge import LLMJudge

    backend = _load(load_backend, target, config.device, "judge")
    return LLMJudge(backend, config.judge_max_new_tokens, config.batch_size, config.seed)


def judge_pairs(
    judge: PairwiseJudge,
    models: Sequence[str],
    prompts: Sequence[list[ChatMessage]],
    replies: dict[str, list[str]],
    on_progress: Progress | None = None,
) -> dict[tuple[str, str], list[float]]:
    """Outcomes of every later-listed model (a) against every earlier one (b), by (a, b)."""
    pairs = [(later, earlier) for earlier, later in combinations(models, 2)]
    outcomes = {}
    for done, (a, b) in enumerate(pairs):
        if on_progress is not None:
            on_progress("judge pairs", done, len(pairs))
        outcomes[(a, b)] = [float(o) for o in judge.compare(prompts, replies[a], replies[b])]
    if on_progress is not None:
        on_progress("judge pairs", len(pairs), len(pairs))
    return outcomes


def build_response_judge(config: EvaluateConfig, safety) -> ResponseJudge | None:
    from alignloop.evaluate.quality import HeuristicResponseJudge, minilm_similarity

    if config.response_judge == "off":
        return None
    similarity = minilm_similarity() if config.response_judge == "heuristic-relevance" else None
    if getattr(safety, "scope", "all") != "all":
        safety = None  # the refusal judge calls every answer unsafe: it reads harmful turns only
    return HeuristicResponseJudge(safety, similarity, unsafe_threshold=config.safety_threshold)


def quality_rows(
    judge: ResponseJudge, prompts: Sequence[list[ChatMessage]], replies: dict[str, list[str]]
) -> list[dict[str, Any]]:
    rows = []
    for model, said in replies.items():
        verdicts = judge.judge(prompts, said)
        rows.append(
            {
                "model": model,
                "n": len(verdicts),
                "good_rate": good_response_rate(verdicts),
                "judge": judge.name,
                "categories": category_shares(verdicts),
            }
        )
    return rows


def safety_rows(
    classifier,
    threshold: float,
    prompts: Sequence[list[ChatMessage]],
    replies: dict[str, list],
    benign: Sequence[bool],
) -> list[dict[str, Any]]:
    """Each model's unsafe rate over every prompt (by `classifier`; the adversarial ones alone
    for the refusal judge) and canned-reply rate over the benign ones (`benign[i]`: prompt i is
    benign; NaN where none is)."""
    from alignloop.evaluate.safety import canned_rate, unsafe_share

    hostile = [not b for b in benign]
    scoped = getattr(classifier, "scope", "all") == "adversarial"
    rows = []
    for model, said in replies.items():
        rows.append(
            {
                "model": model,
                "n": sum(hostile) if scoped else len(said),
                "unsafe_rate": unsafe_share(classifier, prompts, said, hostile, threshold),
                "judge": classifier.name,
                "benign_n": sum(benign),
                "canned_rate": canned_rate([r for r, b in zip(said, benign, strict=True) if b]),
            }
        )
    return rows


def promotion_rows(
    models: Sequence[str],
    win_rates: dict[tuple[str, str], WinRate],
    safety: Sequence[dict[str, Any]],
    policy: PromotionPolicy,
) -> list[dict[str, Any]]:
    """The decision of each model after the first against the first (the deployed one)."""
    unsafe = {row["model"]: row["unsafe_rate"] for row in safety}
    canned = {row["model"]: row.get("canned_rate") for row in safety}
    deployed = models[0]
    rows = []
    for candidate in models[1:]:
        decision = decide_promotion(
            win_rates[(candidate, deployed)], unsafe.get(candidate), unsafe.get(deployed), policy,
            canned.get(candidate), canned.get(deployed),
        )  # fmt: skip
        rows.append({"candidate": candidate, "deployed": deployed, **decision.as_dict()})
    return rows


# --- the whole run ------------------------------------------------------------------------------


@dataclass
class Comparison:
    data: dict[str, Any]
    report: Path


def _statistics(config: EvaluateConfig, outcomes: dict[tuple[str, str], list[float]]):
    win_rates = {
        pair: win_rate_interval(
            values, config.interval, config.confidence, config.win_rate_rounds, config.seed
        )
        for pair, values in outcomes.items()
    }
    battles: list[Battle] = [
        battle
        for (a, b), values in outcomes.items()
        for battle in battles_from_outcomes(a, b, values)
    ]
    scale = RatingScale(
        scale=config.rating_scale,
        base=config.rating_base,
        anchor=config.rating_anchor or config.models[0],
        anchor_rating=config.anchor_rating,
        prior_games=config.prior_games,
    )
    ratings = bootstrap_ratings(
        battles, scale, config.rating_rounds, config.confidence, config.seed
    )
    return win_rates, ratings, scale


def _judge_about(judge: PairwiseJudge) -> dict[str, Any]:
    about: dict[str, Any] = {"name": judge.name}
    stats = getattr(judge, "stats", None)
    if stats is not None:
        about["stats"] = vars(stats)
    return about


def run_comparison(config: EvaluateConfig, on_progress: Progress | None = None) -> Comparison:
    """Generate, judge, compute and report (see the module doc); the report's path."""
    from alignloop.safety.classifiers import load_safety_judge

    marked = preflight(config)
    prompts = [prompt for prompt, _ in marked]
    benign = [kind == "benign" for _, kind in marked]
    replies = generate_all(config, prompts, on_progress)
    judge = build_judge(config)
    try:
        outcomes = judge_pairs(judge, config.models, prompts, replies, on_progress)
    finally:
        if callable(close := getattr(judge, "close", None)):
            close()
    win_rates, ratings, scale = _statistics(config, outcomes)
    classifier = None if config.safety_judge == "off" else load_safety_judge(config.safety_judge)
    safety = (
        []
        if classifier is None
        else safety_rows(classifier, config.safety_threshold, prompts, replies, benign)
    )
    response_judge = build_response_judge(config, classifier)
    quality = [] if response_judge is None else quality_rows(response_judge, prompts, replies)
    policy = PromotionPolicy(
        config.min_win_rate_low, config.unsafe_tolerance, config.canned_tolerance
    )
    data = {
        "title": config.title,
        "models": list(config.models),
        "judge": _judge_about(judge),
        "prompts": {"source": str(config.prompts), "n": len(prompts), "benign": sum(benign)},
        "win_rates": [
            {"model_a": a, "model_b": b, **rate.as_dict()} for (a, b), rate in win_rates.items()
        ],
        "ratings": [{"model": m, **r.as_dict()} for m, r in ratings.items()],
        "rating_scale": {
            **{k: getattr(scale, k) for k in ("scale", "base", "anchor", "anchor_rating")},
            "prior_games": scale.prior_games,
            "rounds": config.rating_rounds,
            "confidence": config.confidence,
        },
        "quality": quality,
        "safety": safety,
        "promotion": [] if not safety else promotion_rows(config.models, win_rates, safety, policy),
        "settings": config.model_dump(),
    }
    if not safety:
        data["notes"] = ["safety_judge is off: no unsafe rate, hence no promotion decision"]
    from alignloop.evaluate.report import write_report

    report = write_report(data, config.out)
    if config.replies_out:
        _write_replies(Path(config.replies_out), prompts, replies)
    return Comparison(data, report)


def _write_replies(
    path: Path, prompts: Sequence[list[ChatMessage]], replies: dict[str, list[str]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"prompt": prompt, "replies": {model: said[i] for model, said in replies.items()}}
        for i, prompt in enumerate(prompts)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
