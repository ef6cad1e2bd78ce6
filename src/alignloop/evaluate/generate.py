"""The one generation path of evaluation: every evaluated reply comes from here, in batches,
through the backend protocol (a local model or any OpenAI-compatible server alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from alignloop.backends.base import Backend, ChatMessage, GenerationParams

GenerationProgress = Callable[[int, int], None]
"""Called as (prompts done, prompts in all) after each batch."""


def generate_replies(
    backend: Backend,
    prompts: Sequence[list[ChatMessage]],
    params: GenerationParams,
    batch_size: int = 16,
    on_progress: GenerationProgress | None = None,
) -> list[str]:
    """One reply per prompt, in order (surrounding whitespace stripped), `batch_size` prompts
    per `backend.generate` call; `params.n` is taken as 1."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    params = replace(params, n=1)
    replies: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        replies.extend(choices[0].text.strip() for choices in backend.generate(batch, params))
        if on_progress is not None:
            on_progress(len(replies), len(prompts))
    return replies
