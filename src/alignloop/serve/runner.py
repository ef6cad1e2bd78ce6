"""Run the server: in this process (`serve`), or as a child process that others drive over
HTTP (the demo, the tests and the benchmarks use the same `ServerProcess`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from alignloop.config import ServeConfig


def serve_forever(settings: ServeConfig) -> None:
    import uvicorn

    from alignloop.serve.app import create_app

    if settings.exit_with_parent:
        stop_when_parent_ends(settings.exit_with_parent)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )


def stop_when_parent_ends(parent: int, every: float = 1.0) -> threading.Thread:
    """A watcher that sends this process SIGTERM (the server's graceful stop) once it is no
    longer the child of `parent`: a parent killed outright (SIGKILL, or SIGTERM, which skips
    its `finally` blocks) cannot stop its servers itself."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`alignloop serve` in a child process on a loopback port; waits for /healthz."""

    def __init__(self, log_path: Path | None = None, startup_timeout: float = 300.0, **options):
        options.setdefault("port", free_port())
        options.setdefault("host", "127.0.0.1")
        self.settings = ServeConfig(**options)
        self.url = f"http://{self.settings.host}:{self.settings.port}"
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "alignloop", "serve"]
        for name, value in self.settings.model_dump(exclude_defaults=True).items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else f"--no-{flag[2:]}")
            else:
                argv += [flag, str(value)]
        if self.settings.exit_with_parent is None:  # the process that runs Popen, at start
            argv += ["--exit-with-parent", str(os.getpid())]
        return argv

    def start(self) -> ServerProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(self._argv(), env=env, stdout=out, stderr=out)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.process.returncode}; "
                    f"see {self.log_path or 'its output'}"
                )
            try:
                response = httpx.get(self.url + "/healthz", timeout=2)
                if response.status_code == 200:
                    return
                if response.json().get("status") == "error":
                    raise RuntimeError(f"server failed to load its model: {response.text}")
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not healthy after {self.startup_timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
