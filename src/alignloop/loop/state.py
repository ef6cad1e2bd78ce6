"""What a round has finished, kept in its folder (`state.json`), so a crashed round resumes
at the first unfinished step and never redoes a finished one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("curate", "data", "positives", "safe answers", "train", "reward", "evaluate", "promote")


class RoundState:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        self.done: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def step(self, name: str, run: Callable[[], Any]) -> Any:
        """`run()`'s result, computed once: a finished step returns what it recorded."""
        if name not in self.done:
            self.done[name] = run()
            self._save()
        return self.done[name]

    def _save(self) -> None:
        """Written to a temporary file and renamed: a crash leaves the old state or the new."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.done, indent=2))
        os.replace(partial, self.path)
