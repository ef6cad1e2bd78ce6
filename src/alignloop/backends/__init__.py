"""Generation backends behind one protocol (`base.Backend`)."""

from __future__ import annotations

from alignloop.backends.base import Backend, ChatMessage, Completion, GenerationParams, TextStream

__all__ = ["Backend", "ChatMessage", "Completion", "GenerationParams", "TextStream", "load_backend"]


def load_backend(
    model: str = "smollm2",
    base_url: str | None = None,
    api_key: str = "alignloop",
    device: str = "cpu",
) -> Backend:
    """A local transformers backend for `model`; an OpenAI-compatible one if `base_url` is set."""
    if base_url:
        from alignloop.backends.openai_backend import OpenAICompatibleBackend

        return OpenAICompatibleBackend(base_url, model, api_key)
    from alignloop.backends.models import resolve_model
    from alignloop.backends.transformers_backend import TransformersBackend

    return TransformersBackend(resolve_model(model), device=device)
