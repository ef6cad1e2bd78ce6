"""Rounds in the background of a served deployment: started on demand (the admin page) or on
a schedule, each `alignloop loop` in its own process so that training never takes the server's
event loop or its memory, and chat goes on while a round runs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from alignloop.errors import AlignloopError


class RoundRunning(AlignloopError):
    status = 409
    code = "round_running"


@dataclass
class LoopRun:
    pid: int
    started: float
    log: str
    returncode: int | None = None


class LoopScheduler:
    """Starts `alignloop loop --config FILE --db DB` in a child process, one at a time."""

    def __init__(self, config_file: str, db: str, every_minutes: float = 0):
        self.config_file, self.db, self.every_minutes = config_file, db, every_minutes
        self.log_path = Path(config_file).resolve().with_suffix(".log")
        self._process: subprocess.Popen | None = None
        self._last: LoopRun | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "alignloop", "loop", "--config", self.config_file,
                "--db", self.db]  # fmt: skip

    def start_round(self) -> LoopRun:
        """Start a round now; refused (409) while one runs."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                raise RoundRunning(f"a round is running (pid {self._process.pid}); wait for it")
            log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            log.close()
            self._last = LoopRun(self._process.pid, time.time(), str(self.log_path))
            return self._last

    def status(self) -> dict:
        with self._lock:
            if self._last is None:
                return {"running": False, "last": None}
            code = self._process.poll() if self._process is not None else None
            self._last.returncode = code
            return {"running": code is None, "last": vars(self._last).copy()}

    def start_schedule(self) -> LoopScheduler:
        if self.every_minutes > 0:
            self._thread = threading.Thread(target=self._tick, name="alignloop-loop", daemon=True)
            self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.every_minutes * 60):
            try:
                self.start_round()
            except RoundRunning:
                continue

    def stop(self) -> None:
        """Stop scheduling; a round under way finishes on its own (it resumes if killed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
