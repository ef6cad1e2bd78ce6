"""Examples to token ids with a loss mask: 1 on the tokens the model learns (assistant turns,
their end-of-turn token included), 0 on the prompt, system and user turns.

The mask is found in characters, then mapped to tokens through the tokenizer's offsets: the
chat template renders the conversation once, and each assistant turn's characters are those
the template adds between "up to the turn, assistant opened" and "up to the turn, closed".
This works for any template that renders a conversation's prefix as a prefix of its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from alignloop.errors import InvalidInput
from alignloop.train.data import Message


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    mask: list[int]  # 1 where the token is a training target

    def __len__(self) -> int:
        return len(self.ids)


def render(tokenizer, messages: Sequence[Message], open_assistant: bool = False) -> str:
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=open_assistant
    )


def assistant_spans(tokenizer, messages: Sequence[Message], last_only: bool) -> list[range]:
    """Character ranges of the assistant turns in `render(tokenizer, messages)`."""
    full = render(tokenizer, messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    spans = []
    for i in turns[-1:] if last_only else turns:
        opened = render(tokenizer, messages[:i], open_assistant=True)
        closed = render(tokenizer, messages[: i + 1])
        if not full.startswith(closed) or not closed.startswith(opened):
            raise InvalidInput(
                "the tokenizer's chat template does not render a conversation's start as the "
                "start of its text, so assistant turns cannot be located; use a model whose "
                "template does (ChatML, Llama, Mistral do)",
                "model",
            )
        spans.append(range(len(opened), len(closed)))
    return spans


def encode_chat(tokenizer, messages: Sequence[Message], last_only: bool = False) -> Encoded:
    """Token ids of the rendered conversation and the mask of its assistant turns (only the
    last one with `last_only`, as for a prompt and its completion)."""
    text = render(tokenizer, messages)
    spans = assistant_spans(tokenizer, messages, last_only)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(start in span for span in spans)) for start, _ in enc["offset_mapping"]]
    return Encoded(list(enc["input_ids"]), mask)


def encode_completion(tokenizer, prompt: Sequence[Message], completion: str) -> Encoded:
    return encode_chat(
        tokenizer, [*prompt, {"role": "assistant", "content": completion}], last_only=True
    )


def encode_text(tokenizer, text: str) -> Encoded:
    """Plain text (the pretraining mix): every token but the first is a target."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return Encoded(list(ids), [0, *[1] * (len(ids) - 1)])


def truncate(example: Encoded, max_length: int) -> Encoded:
    """Fit `max_length` tokens: drop the prompt's oldest tokens first, then the end."""
    extra = len(example) - max_length
    if extra <= 0:
        return example
    first_target = next((i for i, m in enumerate(example.mask) if m), len(example))
    start = min(extra, max(first_target - 1, 0))  # keep one token before the first target
    ids, mask = example.ids[start:], example.mask[start:]
    return Encoded(ids[:max_length], mask[:max_length])


class Movable:
    """A dataclass of tensors (and other movable parts) that moves to a device as a whole."""

    def to(self, device):
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)  # type: ignore[arg-type]
            if hasattr(getattr(self, f.name), "to")
        }
        return replace(self, **moved)  # type: ignore[type-var]


@dataclass
class Batch(Movable):
    input_ids: Tensor  # [batch, T], right-padded
    attention_mask: Tensor
    loss_mask: Tensor  # aligned with input_ids: 1 on target tokens

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def collate(examples: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-pad to the longest example."""
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example)
        ids[row, :n] = torch.tensor(example.ids)
        attention[row, :n] = 1
        loss_mask[row, :n] = torch.tensor(example.mask)
    return Batch(ids, attention, loss_mask)
