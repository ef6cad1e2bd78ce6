"""The steps of a round, each a function of the config and the round's plan that returns what
state.json records (plain JSON)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from alignloop.errors import ConfigError
from alignloop.loop.config import LoopConfig

if TYPE_CHECKING:
    from alignloop.loop.round import Progress, RoundPlan

ROUND_KINDS = ("binary", "pairs", "sft", "safety", "attacks")  # the datasets a round curates


def curate(config: LoopConfig, plan: RoundPlan, report: Progress) -> dict[str, Any]:
    """Curate the whole store (trust needs everyone's history) into the round's curate/."""
    from alignloop.curate.config import CurateConfig
    from alignloop.curate.run import curate as run_curation

    out = plan.folder / "curate"
    if out.exists():  # an interrupted curation starts over; its run row stays unfinished
        shutil.rmtree(out)
    settings = CurateConfig(
        db=config.db,
        out=str(out),
        safety_classifier=config.safety_classifier,
        max_troll_score=config.max_troll_score if config.troll_filter else 1.0,
        judge_red_teaming=config.judge_red_teaming,
        labels_judged_by=config.labels_judged_by,
        min_scale=config.min_scale,
        red_team_thumbs=config.red_team_thumbs,
        thumbs_features=config.thumbs_features,
        kinds=list(ROUND_KINDS),
    )
    result = run_curation(settings, lambda name, done, total: report(f"curate {name}", done, total))
    return {"out": str(out), "run_id": result.run_id, "summary": result.summary}


def _trainer_settings(algo: str, options: dict[str, Any], field: str):
    from alignloop.train.config import ALGORITHMS

    try:
        return ALGORITHMS[algo](**options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{algo} training options: {problems}", field) from exc


def _train(algo: str, options: dict[str, Any], field: str, report: Progress) -> dict[str, Any]:
    """Train and register a version; a version already saved in `out` (the round crashed after
    training, before recording it) is reused."""
    from alignloop.backends.models import version_info
    from alignloop.train.run import train

    out = Path(options["out"])
    if (out / "alignloop.json").exists():
        info = version_info(out)
        return {"name": info["name"], "out": str(out), "metrics": info.get("metrics", {})}
    settings = _trainer_settings(algo, options, field)
    result = train(algo, settings, lambda step, total, _: report(f"train {algo}", step, total))
    return {"name": settings.name, "out": str(result.out), "metrics": result.metrics}


def add_demonstrations(plan: RoundPlan, rows: dict) -> dict:
    """The binary rows with the demonstrations (corrections) as liked rows, for each of the
    round's sets (this round's, not yet learned, every round's): the candidate and the reward
    model both learn from what people said the bot should have said."""
    from alignloop.loop.data import demonstrations

    sft = rows["sft"]
    return _with_liked(
        plan, rows["binary"], "binary+sft", lambda part: demonstrations(Path(sft[part]))
    )


def add_safe_answers(config: LoopConfig, plan: RoundPlan, rows: dict) -> dict:
    """The binary rows with a safe answer (the gate's canned reply) as a liked row in the
    context of every red-team reply people labelled unsafe or disliked and (unless
    `attack_answers` is off) of every reply in a distrusted user's red-team conversation:
    baked-in safety, so the candidate and the reward model learn to turn such requests down.
    Every set gets the safe answers of every round so far: a later candidate trained on a round
    with few attacks rehearses them instead of unlearning them."""
    from alignloop.loop.data import safe_answers
    from alignloop.safety.gate import CannedReplies

    canned, binary = CannedReplies(config.safe_answer_style), rows["binary"]
    attacks = rows.get("attacks") if config.attack_answers else None  # older rounds have none
    answers = list(
        safe_answers(
            Path(rows["safety"]["cumulative"]), Path(binary["cumulative"]), canned.pick,
            config.seed, Path(attacks["cumulative"]) if attacks else None,
        )
    )  # fmt: skip
    return _with_liked(plan, binary, "binary+safe", lambda _: answers)


def _with_liked(plan: RoundPlan, binary: dict, stem: str, liked_for) -> dict:
    from alignloop.loop.data import PARTS, with_liked_rows

    merged = dict(binary)
    for part, suffix in PARTS.items():
        out = plan.folder / "data" / f"{stem}{suffix}.jsonl"
        merged[f"{part}_count"], added = with_liked_rows(Path(binary[part]), liked_for(part), out)
        merged[f"{part}_added_{stem}"] = added
        merged[part] = str(out)
    return merged


def training_kind(config: LoopConfig) -> str:
    return "pairs" if config.algorithm == "dpo" else "binary"


def training_part(config: LoopConfig) -> str:
    """Which of a round's row sets the candidate learns from (see LoopConfig.candidate_rows)."""
    return "unlearned" if config.candidate_rows == "since_deployed" else "new"


def _common(config: LoopConfig) -> dict[str, Any]:
    return {
        "db": config.db,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "seed": config.seed,
        "resume": True,
    }


def train_candidate(config: LoopConfig, plan: RoundPlan, rows: dict, report: Progress) -> dict:
    """The candidate: the deployed version trained on the rows it has not learned from (or
    only this round's, by config)."""
    options: dict[str, Any] = {}
    if config.train_config:
        options = yaml.safe_load(Path(config.train_config).read_text(encoding="utf-8")) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{config.train_config} is not a YAML mapping", "train_config")
    options.update(
        _common(config),
        model=plan.deployed,
        data=rows[training_kind(config)][training_part(config)],
        out=str(plan.folder / "candidate"),
        name=f"{config.arm}-round-{plan.number}",
        parent=plan.deployed_name,
        max_steps=config.train_steps,
    )
    return _train(config.algorithm, options, "train_config", report)


def train_reward(config: LoopConfig, plan: RoundPlan, rows: dict, report: Progress) -> dict:
    """A thumbs reward model on every round's binary rows so far (the evaluation's judge)."""
    options = {
        **_common(config),
        "model": config.reward_base or config.base_model,
        "data": rows["binary"]["cumulative"],
        "out": str(plan.folder / "reward"),
        "name": f"{config.arm}-round-{plan.number}-reward",
        "objective": "binary",
        "center": False,
        "max_steps": config.reward_steps,
    }
    return _train("reward", options, "reward_steps", report)


def evaluate(
    config: LoopConfig, plan: RoundPlan, candidate: str, reward: dict | None, report: Progress
) -> dict[str, Any]:
    from alignloop.loop.evaluation import evaluate_candidate

    return evaluate_candidate(
        config, plan.deployed, candidate, reward["out"] if reward else None, plan.folder, report
    )
