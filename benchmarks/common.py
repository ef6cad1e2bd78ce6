"""What the benchmarks share: running the CLI in a child process, peak memory, the device."""

from __future__ import annotations

import os
import resource
import subprocess
import sys


def alignloop(*args: str) -> str:
    """Run `alignloop ARGS` offline in a child process; its output, or RuntimeError."""
    run = subprocess.run(
        [sys.executable, "-m", "alignloop", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return run.stdout + run.stderr


def peak_memory_mb() -> float:
    """This process's peak: CUDA max allocated on a GPU, else max RSS."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu x{os.cpu_count()}"
