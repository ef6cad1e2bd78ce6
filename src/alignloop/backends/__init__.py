"""Generation backends behind one protocol (`base.Backend`)."""

from __future__ import annotations

from alignloop.backends.base import Backend, ChatMessage, Completion, GenerationParams, TextStream

__all__ = ["Backend", "ChatMessage", "Completion", "GenerationParams", "TextStream", "load_backend"]


def load_backend(
    model: str = "smollm2",
    base_url: str | None = None,
    api_key: str = "alignloop",
    device: str = "cpu",
    max_batch_size: int = 16,
) -> Backend:
    """A local transformers backend for `model` (concurrent calls share batches of up to
    `max_batch_size` replies); an OpenAI-compatible one if `base_url` is set."""
    if base_url:
        from alignloop.backends.openai_backend import OpenAICompatibleBackend

        return OpenAICompatibleBackend(base_url, model, api_key)
    from alignloop.backends.models import resolve_model
    from alignloop.backends.transformers_backend import TransformersBackend

    return TransformersBackend(resolve_model(model), device, max_batch_size)
