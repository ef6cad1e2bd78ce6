"""Simulated people talking to the REAL server over HTTP (issue 8).

Unlike `simulate/deployment`, which writes rows straight into the store, these users go
through the public API as people do: OpenAI-compatible chat, likes and dislikes with reasons
and corrections, answers under canned safety replies, red-team labels, consent. What is true
about every reply (the hidden gold judge's verdict) is kept aside in a JSONL file, never in the
store, for benchmarks and for the loop's before/after measurement.

Modules: config (`SimulateLiveConfig`, user types), gold (`GoldJudge`), prompts (what users say,
held-out prompts), users (personas and their reactions), client (HTTP with polite retries),
run (`simulate`, `measure`), cli (the `alignloop simulate` callback).

Names are imported on first use (the CLI imports this package when it starts); torch loads
only when a judge first judges.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SAFETYMIX_NAMES": "config",
    "TROLL_TYPES": "config",
    "USER_TYPES": "config",
    "SimulateLiveConfig": "config",
    "GoldConfig": "gold",
    "GoldJudge": "gold",
    "Verdict": "gold",
    "Prompt": "prompts",
    "heldout_prompts": "prompts",
    "SimulationResult": "run",
    "measure": "run",
    "simulate": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
