"""Checkpoints that make a killed run end where an uninterrupted one would.

A checkpoint holds what learns (adapters and heads, or all weights), the optimizer and the
scheduler, every random generator of every process, and the step. It is written to a temporary
folder and renamed into place, so a kill while writing leaves the previous one intact.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

PREFIX = "step-"


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"{PREFIX}{step:07d}"


def latest_checkpoint(out: Path) -> tuple[int, Path] | None:
    folder = out / "checkpoints"
    done = (
        [p for p in folder.glob(f"{PREFIX}*") if (p / "state.pt").exists()]
        if folder.exists()
        else []
    )
    if not done:
        return None
    path = max(done, key=lambda p: int(p.name[len(PREFIX) :]))
    return int(path.name[len(PREFIX) :]), path


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    accelerator, out: Path, step: int, model: nn.Module, optimizer, scheduler, keep: int
) -> Path:
    """Every process writes its random state; the main one writes the rest, then renames."""
    target = checkpoint_dir(out, step)
    tmp = target.with_name(target.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {
            "step": step,
            "model": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        torch.save(state, tmp / "state.pt")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        _prune(out, keep)
    accelerator.wait_for_everyone()
    return target


def _prune(out: Path, keep: int) -> None:
    folders = sorted((out / "checkpoints").glob(f"{PREFIX}*"), key=lambda p: p.name)
    for old in [p for p in folders if not p.name.endswith(".tmp")][:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(accelerator, path: Path, model: nn.Module, optimizer, scheduler) -> int:
    """Restore a checkpoint into a freshly built run; returns the step it was taken after."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["model"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return int(state["step"])
