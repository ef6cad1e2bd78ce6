"""The embedded default model: converted once from its GGUF, then loaded fast and answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignloop.backends.base import GenerationParams
from alignloop.backends.models import resolve_model

pytestmark = pytest.mark.slow


def test_smollm2_is_cached_as_safetensors_and_answers():
    from alignloop.backends.transformers_backend import TransformersBackend

    resolved = resolve_model("smollm2")  # builds the cache on first use (about 30 s)
    assert resolved.name == "smollm2-135m-instruct"
    # loads from the converted safetensors (how fast is the benchmarks' business, not a test's)
    assert list(Path(resolved.path).glob("*.safetensors"))
    backend = TransformersBackend(resolve_model("smollm2"))
    reply = backend.generate(
        [[{"role": "user", "content": "What is the capital of France?"}]],
        GenerationParams(max_new_tokens=16, temperature=0),
    )[0][0]
    assert "Paris" in reply.text and reply.finish_reason == "stop"
