"""Micro-batching on one model thread: concurrent `generate` calls with the same settings run
as one batch, and every forward pass of the process runs on the same OS thread.

A server answers each request with its own `generate` call, and one model generates one
batch at a time. On a CPU (and more so on a GPU) a batch of 8 replies costs little more
than one: a decoding step is bound by reading the weights, not by the arithmetic. So the
calls that arrive while the model is busy wait in a queue, and the next free turn takes the
oldest of them together with every queued call that decodes the same way (same length,
temperature, top-p, stop strings: all but the seed), up to `max_batch` rows. A lone call
runs at once, as before; nothing waits for company.

Each call keeps its own seed: the runner gets one seed per call and samples every row from
its own random generator, so a seeded request draws the same reply whether it ran alone or
beside others (up to the floating-point noise of a different batch shape).

Why one thread (`ModelThread`): torch computes on CPU with OpenMP, and every OS thread that
runs a parallel region gets its own team of OpenMP threads. Once a process holds more of them
than the machine has cores, libgomp stops spinning between parallel regions and every forward
pass gets about 30% slower, for as long as the extra team's thread lives. A server answering
each request on a pool thread, or streaming on a thread per stream, hits that at once. So the
batches (and streams) run on one thread per process, which exits when idle for a moment so
that a process that trains on its main thread between generations gets its speed back.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from alignloop.backends.base import ChatMessage, Completion, GenerationParams

Call = tuple[Sequence[list[ChatMessage]], int | None]
"""One caller's prompts and seed."""
RunBatch = Callable[[list[Call], GenerationParams], list[list[list[Completion]]]]
"""run(calls, shared params) -> per call, `params.n` completions per prompt."""
T = TypeVar("T")


class ModelThread:
    """Runs submitted functions one at a time, in order, on one thread that exits after
    `idle_seconds` without work (and is started again by the next submission)."""

    def __init__(self, idle_seconds: float = 2.0):
        self.idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._work.put((fn, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="alignloop-model")
                self._thread.daemon = True
                self._thread.start()
        return future

    def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the model thread; its result or its exception here."""
        return self.submit(fn).result()

    def _serve(self) -> None:
        while True:
            try:
                fn, future = self._work.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:  # nothing can be queued unseen while we decide to exit
                    if self._work.empty():
                        self._thread = None
                        return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as error:
                    future.set_exception(error)


MODEL_THREAD = ModelThread()
"""The process's model thread (one per process: it stands for the process's OpenMP team)."""


@dataclass
class _Job:
    prompts: Sequence[list[ChatMessage]]
    params: GenerationParams
    done: threading.Event = field(default_factory=threading.Event)
    result: list[list[Completion]] | None = None
    error: BaseException | None = None

    @property
    def key(self) -> GenerationParams:
        return replace(self.params, seed=None)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.params.n


class MicroBatcher:
    """Runs `run` on batches of queued calls on the model thread, one batch at a time (see
    the module docstring)."""

    def __init__(self, run: RunBatch, max_batch: int, thread: ModelThread = MODEL_THREAD):
        self._run = run
        self.max_batch = max_batch
        self.thread = thread
        self._queue: deque[_Job] = deque()
        self._queue_lock = threading.Lock()
        self.batches: list[int] = []  # calls per batch run (recent ones; for tests and stats)

    def generate(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        job = _Job(prompts, params)
        with self._queue_lock:
            self._queue.append(job)
        # One turn per call: a turn runs the oldest batch, which may already hold later calls
        # (their turns then find nothing to do).
        self.thread.submit(self._run_next)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _run_next(self) -> None:
        """Take the oldest queued call and the compatible ones behind it, and run them."""
        batch = self._take_batch()
        if not batch:
            return
        self.batches = [*self.batches[-99:], len(batch)]
        try:
            results = self._run([(j.prompts, j.params.seed) for j in batch], batch[0].params)
            for job, result in zip(batch, results, strict=True):
                job.result = result
        except BaseException as error:  # every caller in the batch learns why
            for job in batch:
                job.error = error
        finally:
            for job in batch:
                job.done.set()

    def _take_batch(self) -> list[_Job]:
        with self._queue_lock:
            if not self._queue:
                return []
            first = self._queue.popleft()
            batch, rows, kept = [first], first.rows, deque()
            while self._queue:
                job = self._queue.popleft()
                if job.key == first.key and rows + job.rows <= self.max_batch:
                    batch.append(job)
                    rows += job.rows
                else:
                    kept.append(job)
            self._queue = kept
            return batch
