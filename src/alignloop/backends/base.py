"""The one generation protocol every backend speaks: chat messages in, completions out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypedDict, runtime_checkable


class ChatMessage(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings; temperature 0 means greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50  # sample among the k likeliest tokens (0: all); transformers' default
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TextStream:
    """Text deltas as they are produced; `finish_reason` and counts are set once it is exhausted."""

    deltas: Iterator[str]
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _cancel: list = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[str]:
        return self.deltas

    def cancel(self) -> None:
        """Stop generating (the reader went away)."""
        for callback in self._cancel:
            callback()


@runtime_checkable
class Backend(Protocol):
    model_name: str

    def generate(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in order."""
        ...

    def stream(self, prompt: list[ChatMessage], params: GenerationParams) -> TextStream: ...

    def close(self) -> None: ...


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the first stop string; say whether one was found."""
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopStringBuffer:
    """Holds back streamed text that might be the start of a stop string."""

    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """The text that is now safe to emit."""
        if self.stopped:
            return ""
        self._pending += delta
        text, hit = truncate_at_stop(self._pending, self._stops)
        if hit:
            self.stopped, self._pending = True, ""
            return text
        keep = self._longest_stop_prefix_suffix(self._pending)
        emit = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(emit) :]
        return emit

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return "" if self.stopped else text

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
