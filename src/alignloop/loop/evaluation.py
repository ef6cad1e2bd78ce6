"""A round's evaluation: the candidate against the deployed version on held-out prompts.

Both answer every prompt (greedy); the pairwise judge compares them (win rate with its
interval, ties half); the safety judge (a classifier, not the serving gate's) gives each
model's unsafe rate; each model's canned-reply rate on the benign prompts shows whether the
candidate deflects everyday talk; `decide_promotion` says whether the candidate replaces the
deployed version. Replies, figures and the report land in the round's evaluation/ folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignloop.backends.base import ChatMessage, GenerationParams
from alignloop.errors import ConfigError
from alignloop.evaluate.prompts import PROMPT_SETS, PromptSet, evaluation_window
from alignloop.loop.config import LoopConfig
from alignloop.safety.classifiers import REPLY_JUDGES

if TYPE_CHECKING:
    from alignloop.evaluate.judges import PairwiseJudge
    from alignloop.loop.round import Progress


def held_out_prompts(config: LoopConfig) -> list[PromptSet]:
    """Each built-in set's last `eval_limit` prompts (its evaluation window, which simulated
    users never say), or a file's first `eval_limit` (one set per kind its rows are marked
    with)."""
    found = []
    for source in config.eval_prompts:
        if source in PROMPT_SETS:
            found.append(evaluation_window(source, config.eval_limit))
        else:
            found.extend(_file_prompts(source, config.eval_limit))
    if config.canned_tolerance is not None and all(s.kind != "benign" for s in found):
        raise ConfigError(
            "canned_tolerance: it is measured on benign held-out prompts, and every prompt of "
            "eval_prompts is marked adversarial; add benign prompts or set canned_tolerance: "
            "null",
            "canned_tolerance",
        )
    if config.safety_judge in REPLY_JUDGES and all(s.kind != "adversarial" for s in found):
        raise ConfigError(
            f"safety_judge: {config.safety_judge!r} judges replies to adversarial prompts, and "
            "eval_prompts has none; add 'adversarial' (or a file's rows marked \"kind\": "
            '"adversarial") or name a classifier',
            "safety_judge",
        )
    return found


def _file_prompts(path: str, limit: int) -> list[PromptSet]:
    """A prompt file's prompts, as a benign set and an adversarial set (by each row's kind;
    a set only where the file has such prompts)."""
    from alignloop.errors import AlignloopError
    from alignloop.evaluate.compare import load_marked_prompts

    try:
        marked = load_marked_prompts(path, limit)
    except AlignloopError as exc:
        raise type(exc)(exc.message, "eval_prompts") from exc
    name = Path(path).stem
    return [
        PromptSet(name if kind == "benign" else f"{name}-{kind}", prompts, kind, path)
        for kind in ("benign", "adversarial")
        if (prompts := [prompt for prompt, k in marked if k == kind])
    ]


def pairwise_judge(config: LoopConfig, reward_model: str | None) -> PairwiseJudge:
    """'reward' is this round's reward model; any other spec is read as `alignloop evaluate`
    reads its --judge ('reward:FOLDER' or 'llm:MODEL')."""
    from alignloop.evaluate.config import parse_judge_spec
    from alignloop.evaluate.judges import RewardModelJudge

    if config.judge == "reward":
        if reward_model is None:
            raise ConfigError(
                "judge 'reward' needs this round's reward model: set train_reward_model: true "
                "or name one (judge: reward:FOLDER)",
                "judge",
            )
        return RewardModelJudge(reward_model)
    try:
        kind, target = parse_judge_spec(config.judge)
    except ValueError as exc:
        raise ConfigError(f"{exc}, or 'reward' (this round's reward model)", "judge") from exc
    if kind == "reward":
        return RewardModelJudge(target)
    from alignloop.backends import load_backend
    from alignloop.evaluate.llm_judge import LLMJudge

    return LLMJudge(load_backend(target), seed=config.seed)


def _replies(model: str, prompts: list[list[ChatMessage]], config: LoopConfig, stage, report):
    from alignloop.backends import load_backend
    from alignloop.evaluate.generate import generate_replies

    params = GenerationParams(
        max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed
    )
    backend = load_backend(model)
    try:
        return generate_replies(
            backend, prompts, params, config.generation_batch_size,
            lambda done, total: report(stage, done, total),
        )  # fmt: skip
    finally:
        backend.close()


def cached_replies(cache: Path, model: str, prompts, config: LoopConfig, stage, report):
    """The deployed version's greedy replies, generated once per (model, prompts, settings):
    a version kept over several rounds is not asked again."""
    key = hashlib.sha256(
        json.dumps([model, prompts, config.max_new_tokens, config.seed]).encode()
    ).hexdigest()[:16]
    path = cache / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    replies = _replies(model, prompts, config, stage, report)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(replies))
    return replies


def unsafe_rate(judge, sets: list[PromptSet], replies: list[str]) -> float:
    """The share of replies `judge` scores unsafe (P >= 0.5): over every held-out prompt, or
    the adversarial ones alone for a judge scoped to them (the refusal judge); NaN for none."""
    from alignloop.evaluate.safety import unsafe_share

    prompts = [p for s in sets for p in s.prompts]
    adversarial = [s.kind == "adversarial" for s in sets for _ in s.prompts]
    return unsafe_share(judge, prompts, replies, adversarial)


def benign_replies(sets: list[PromptSet], replies: list[str]) -> list[str]:
    """The replies (in the sets' order, as the prompts were flattened) to benign prompts."""
    kinds = [s.kind for s in sets for _ in s.prompts]
    return [reply for reply, kind in zip(replies, kinds, strict=True) if kind == "benign"]


def evaluate_candidate(
    config: LoopConfig,
    deployed: str,
    candidate: str,
    reward_model: str | None,
    folder: Path,
    report: Progress,
) -> dict[str, Any]:
    from alignloop.evaluate.promotion import PromotionPolicy, decide_promotion
    from alignloop.evaluate.ratings import win_rate_interval
    from alignloop.evaluate.safety import canned_rate
    from alignloop.safety.classifiers import load_safety_judge

    sets = held_out_prompts(config)
    prompts = [p for s in sets for p in s.prompts]
    judge = pairwise_judge(config, reward_model)
    safety = load_safety_judge(config.safety_judge, db=config.db)
    new = _replies(candidate, prompts, config, "evaluate: candidate replies", report)
    cache = folder.parent / "deployed-replies"
    old = cached_replies(cache, deployed, prompts, config, "evaluate: deployed replies", report)
    report("evaluate: judging", 0, 0)
    outcomes = judge.compare(prompts, new, old)
    win = win_rate_interval(outcomes, confidence=config.confidence)
    unsafe = {
        "candidate": unsafe_rate(safety, sets, new),
        "deployed": unsafe_rate(safety, sets, old),
    }
    canned = {
        "candidate": canned_rate(benign_replies(sets, new)),
        "deployed": canned_rate(benign_replies(sets, old)),
    }
    policy = PromotionPolicy(
        unsafe_tolerance=config.safety_tolerance, canned_tolerance=config.canned_tolerance
    )
    decision = decide_promotion(
        win, unsafe["candidate"], unsafe["deployed"], policy, canned["candidate"],
        canned["deployed"],
    )  # fmt: skip
    figures = {
        "judge": judge.name,
        "safety_judge": safety.name,
        "prompts": {s.name: {"n": len(s), "source": s.source} for s in sets},
        "win_rate": win.as_dict(),
        "unsafe_rate": unsafe,
        "benign_canned_rate": canned,
        "decision": decision.as_dict(),
    }
    _write(folder / "evaluation", figures, prompts, new, old, outcomes)
    figures["report"] = str(round_report(figures, candidate, deployed, folder / "evaluation"))
    return figures


def model_label(source: str) -> str:
    """A trained version's registered name, else the spec as given."""
    from alignloop.backends.models import version_info

    if (Path(source) / "alignloop.json").exists():
        return version_info(source).get("name", source)
    return source


def round_report(figures: dict[str, Any], candidate: str, deployed: str, out: Path) -> Path:
    """The round's HTML report (report.json beside it): win rate, unsafe rates, decision."""
    from alignloop.evaluate.report import write_report

    names = {"candidate": model_label(candidate), "deployed": model_label(deployed)}
    win = figures["win_rate"]
    decision = figures["decision"]
    data = {
        "title": f"loop round: {names['candidate']} against {names['deployed']}",
        "models": [names["candidate"], names["deployed"]],
        "judge": figures["judge"],
        "prompts": {"source": ", ".join(figures["prompts"]), "n": win["n"]},
        "win_rates": [{"model_a": names["candidate"], "model_b": names["deployed"], **win}],
        "safety": [
            {
                "model": names[k],
                "n": win["n"],
                "unsafe_rate": figures["unsafe_rate"][k],
                "judge": figures["safety_judge"],
            }
            for k in ("candidate", "deployed")
        ],
        "promotion": [
            {
                "candidate": names["candidate"],
                "deployed": names["deployed"],
                "promote": decision["promote"],
                "reasons": decision["reasons"],
            }
        ],
    }
    return write_report(data, out)


def _write(out: Path, figures: dict, prompts, new: list[str], old: list[str], outcomes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(figures, indent=2))
    with (out / "replies.jsonl").open("w", encoding="utf-8") as handle:
        for prompt, a, b, outcome in zip(prompts, new, old, outcomes, strict=True):
            row = {"prompt": prompt, "candidate": a, "deployed": b, "outcome": float(outcome)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
