"""`alignloop train <algo>`: run an algorithm on the shared loop, write the trained version to
its folder (adapter or weights, heads, tokenizer, alignloop.json with its lineage) and record it
in the store's model registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alignloop.backends.models import model_source, version_info
from alignloop.store.versions import check_name_free, data_version
from alignloop.train.algorithms.cringe import Cringe
from alignloop.train.algorithms.dpo import DPO
from alignloop.train.algorithms.kto import KTO
from alignloop.train.algorithms.ppo import PPO
from alignloop.train.algorithms.reward import Reward
from alignloop.train.algorithms.sft import SFT
from alignloop.train.config import TrainConfig
from alignloop.train.loop import Trainer, TrainResult
from alignloop.train.modeling import save_version

ALGORITHM_CLASSES = {
    "sft": SFT,
    "reward": Reward,
    "dpo": DPO,
    "kto": KTO,
    "cringe": Cringe,
    "ppo": PPO,
}


def version_name(algo: str, config: TrainConfig) -> str:
    return config.name or f"{algo}-{Path(config.out).resolve().name}"


def parent_of(config: TrainConfig) -> str | None:
    if config.parent:
        return config.parent
    info = version_info(config.model) if Path(config.model).is_dir() else {}
    return info.get("name")


def train(
    algo: str, config: TrainConfig, on_step: Callable[[int, int, dict], None] | None = None
) -> TrainResult:
    """Train, save the version into config.out and register it (when config.db is set)."""
    name = version_name(algo, config)
    if config.db:
        check_name_free(config.db, name)
    started = time.time()
    algorithm = ALGORITHM_CLASSES[algo]()
    trainer = Trainer(config, algorithm, on_step)
    result = trainer.run()
    result.metrics["train_seconds"] = round(time.time() - started, 1)
    if not trainer.accelerator.is_main_process:
        return result
    info = {
        "name": name,
        "algorithm": algo,
        "start": model_source(config.model),
        "parent": parent_of(config),
        "heads": list(algorithm.heads),
        "data": str(Path(config.data).resolve()),
        "data_version": data_version(config.data),
        "config": config.model_dump(mode="json"),
        "metrics": result.metrics,
        "steps": result.steps,
        "created_at": datetime.now(UTC).isoformat(),
    }
    save_version(trainer.model, trainer.tokenizer, result.out, info, algorithm.heads)
    if config.db:
        result.version_id = register(config.db, info, result.out)
    return result


def register(db: str, info: dict, folder: Path) -> int:
    from sqlalchemy.orm import Session

    from alignloop.store.db import make_engine
    from alignloop.store.repository import TrainedVersion, add_trained_version

    version = TrainedVersion(
        name=info["name"],
        base=info["start"],
        path=str(Path(folder).resolve()),
        algorithm=info["algorithm"],
        weights="adapter" if info["config"]["lora"] else "full",
        data_version=info["data_version"],
        config=info["config"],
        metrics=info["metrics"],
        parent=info["parent"],
    )
    with Session(make_engine(db)) as session, session.begin():
        return add_trained_version(session, version)
