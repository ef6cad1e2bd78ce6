"""The one training loop every algorithm runs on (sft, reward, dpo, kto, cringe, ppo).

An algorithm says how to turn examples into batches, what to compute without gradients before
a step (reference log-probabilities, PPO rollouts) and what the loss is; the loop owns the
rest: data order, gradient accumulation, processes (`accelerate launch`), mixed precision,
checkpoints and resume, metrics, and writing the trained version.

`batch_size` is the number of examples per optimizer step over all processes: each step takes
`batch_size` examples in `grad_accum` micro-batches, and each micro-batch is split evenly
between the processes, so one process and many compute the same steps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from alignloop.errors import ConfigError, InvalidInput
from alignloop.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from alignloop.train.config import TrainConfig
from alignloop.train.modeling import TrainModel, build_train_model

KILL_AFTER_STEP = "ALIGNLOOP_KILL_AFTER_STEP"  # tests: SIGKILL the run after this step


class Algorithm(Protocol):
    name: str
    heads: Sequence[str]  # heads saved with the version
    inner_epochs: int  # optimizer passes over each prepared batch (PPO's ppo_epochs)

    def setup(self, model: TrainModel, tokenizer, config: TrainConfig) -> None:
        """Add heads and adapters before the optimizer is built."""

    def load(self, config: TrainConfig, tokenizer) -> tuple[list, list]:
        """(training items, held-out items) ready for `collate`."""

    def collate(self, items: list) -> Any: ...

    def prepare(self, model: TrainModel, batch: Any) -> Any:
        """Work without gradients before the loss (reference log-probs, rollouts)."""

    def loss(self, model: Callable, batch: Any) -> tuple[Tensor, dict[str, float]]: ...

    def finish(self, model: TrainModel, held_out: list) -> dict[str, float]:
        """Last steps on the trained model (reward centring, held-out accuracy)."""


@dataclass
class Schedule:
    """Which examples each process sees at each step: a seeded shuffle per epoch."""

    n_examples: int
    batch_size: int
    grad_accum: int
    world: int
    seed: int
    total_steps: int = 0
    steps_per_epoch: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps_per_epoch = self.n_examples // self.batch_size
        micro = self.batch_size // self.grad_accum
        if self.steps_per_epoch == 0:
            raise InvalidInput(
                f"{self.n_examples} examples are fewer than batch_size {self.batch_size}; "
                "lower batch_size or add data",
                "batch_size",
            )
        if micro % self.world:
            raise ConfigError(
                f"batch_size / grad_accum = {micro} examples per micro-batch cannot be split "
                f"evenly over {self.world} processes; make it a multiple of {self.world}",
                "batch_size",
            )

    def plan(self, epochs: float, max_steps: int | None) -> Schedule:
        self.total_steps = max_steps or max(1, math.ceil(epochs * self.steps_per_epoch))
        return self

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = torch.randperm(
            self.n_examples, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch)
        )
        micro_size = self.batch_size // self.grad_accum
        per_process = micro_size // self.world
        start = within * self.batch_size + micro * micro_size + rank * per_process
        return order[start : start + per_process].tolist()


@dataclass
class TrainResult:
    out: Path
    steps: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    version_id: int | None = None


def mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16" if cuda_bf16 else "no"


def _optimizer(model: TrainModel, config: TrainConfig, total_steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every weight is frozen", "lora")
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        remaining = total_steps - config.warmup_steps
        return max(0.0, 1 - (step - config.warmup_steps) / max(remaining, 1))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """Runs one algorithm under one config; `run()` returns the trained version's folder."""

    def __init__(
        self,
        config: TrainConfig,
        algorithm: Algorithm,
        on_step: Callable[[int, int, dict], None] | None = None,
    ):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config, self.algorithm, self.on_step = config, algorithm, on_step
        self.out = Path(config.out)
        self.accelerator = Accelerator(
            mixed_precision=mixed_precision(config.mixed_precision), cpu=config.device == "cpu"
        )
        set_seed(config.seed)
        self.model, self.tokenizer = build_train_model(
            config.model,
            config.lora,
            config.lora_r,
            config.lora_alpha,
            config.lora_dropout,
            config.targets(),
            config.gradient_checkpointing,
        )
        algorithm.setup(self.model, self.tokenizer, config)
        self.items, self.held_out = algorithm.load(config, self.tokenizer)
        self.schedule = Schedule(
            len(self.items),
            config.batch_size,
            config.grad_accum,
            self.accelerator.num_processes,
            config.seed,
        ).plan(config.epochs, config.max_steps)
        optimizer_steps = self.schedule.total_steps * algorithm.inner_epochs
        optimizer, self.scheduler = _optimizer(self.model, config, optimizer_steps)
        # The scheduler stays unprepared: accelerate would step it once per process.
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, optimizer)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def run(self) -> TrainResult:
        start = self._resume()
        self._trim_metrics(start)
        history: list[dict[str, float]] = []
        for step in range(start, self.schedule.total_steps):
            metrics = self._step(step)
            if (step + 1) % self.config.log_every == 0 or step + 1 == self.schedule.total_steps:
                history.append({"step": step + 1, **metrics})
                self._log(history[-1])
            if self.on_step:
                self.on_step(step + 1, self.schedule.total_steps, metrics)
            if (step + 1) % self.config.save_every == 0:
                save_checkpoint(
                    self.accelerator,
                    self.out,
                    step + 1,
                    self.model,
                    self.optimizer,
                    self.scheduler,
                    self.config.keep_checkpoints,
                )
            if os.environ.get(KILL_AFTER_STEP) == str(step + 1):
                os.kill(os.getpid(), signal.SIGKILL)
        self.model.eval()
        final = self.algorithm.finish(self.model, self.held_out)
        last = history[-1] if history else {}
        metrics = {k: v for k, v in last.items() if k != "step"} | final
        return TrainResult(self.out, self.schedule.total_steps, metrics, history)

    def _resume(self) -> int:
        found = latest_checkpoint(self.out) if self.config.resume else None
        if found is None:
            return 0
        _, path = found
        loaded = load_checkpoint(self.accelerator, path, self.model, self.optimizer, self.scheduler)
        if self.accelerator.is_main_process:
            print(f"resumed from {path} (step {loaded})", flush=True)
        return loaded

    def _step(self, step: int) -> dict[str, float]:
        self.model.train()
        rank = self.accelerator.process_index
        prepared = []
        for micro in range(self.config.grad_accum):
            items = [self.items[i] for i in self.schedule.indices(step, micro, rank)]
            batch = self.algorithm.collate(items)
            with torch.no_grad(), self.accelerator.autocast():
                prepared.append(self.algorithm.prepare(self.model, _to(batch, self.device)))
        totals: dict[str, float] = {}
        for _ in range(self.algorithm.inner_epochs):
            for micro, batch in enumerate(prepared):
                last = micro == len(prepared) - 1
                with _maybe_no_sync(self.accelerator, self.wrapped, not last):
                    loss, metrics = self.algorithm.loss(self.wrapped, batch)
                    self.accelerator.backward(loss / len(prepared))
                for key, value in {"loss": loss.item(), **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + value / len(prepared)
            if self.config.max_grad_norm:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        epochs = self.algorithm.inner_epochs
        averaged = {k: v / epochs for k, v in totals.items()}
        gathered = self.accelerator.reduce(
            torch.tensor(list(averaged.values()), device=self.device), reduction="mean"
        )
        return dict(zip(averaged, gathered.tolist(), strict=True)) | {
            "lr": self.scheduler.get_last_lr()[0]
        }

    def _trim_metrics(self, start: int) -> None:
        """Keep the metrics of the steps a resumed run does not redo."""
        path = self.out / "metrics.jsonl"
        if not self.accelerator.is_main_process or not path.exists():
            return
        lines = path.read_text().splitlines() if start else []
        kept = [line for line in lines if json.loads(line)["step"] <= start]
        path.write_text("".join(line + "\n" for line in kept))

    def _log(self, row: dict[str, float]) -> None:
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps({**row, "time": time.time()}) + "\n")


def _to(batch: Any, device: torch.device) -> Any:
    return batch.to(device) if hasattr(batch, "to") else batch


def _maybe_no_sync(accelerator, model, skip: bool):
    return accelerator.no_sync(model) if skip else nullcontext()
