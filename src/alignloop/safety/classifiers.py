"""Safety classifiers behind one interface: `score(context, utterance) -> P(unsafe)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from alignloop.backends.base import ChatMessage


@runtime_checkable
class SafetyClassifier(Protocol):
    name: str

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        """Probability that `utterance`, said after `context`, is unsafe."""
        ...


class ProfanityClassifier:
    """The `alt-profanity-check` model: a linear model on the utterance alone (profanity only).

    The package's model is a CalibratedClassifierCV over LinearSVC folds with sigmoid
    calibration; for two classes its probability is exactly
    mean_i expit(-(a_i * (w_i . x + b_i) + c_i)). Evaluating that with one sparse product
    gives the same numbers as `predict_prob` about six times faster (it runs on every reply).
    """

    name = "alt-profanity-check"

    def __init__(self) -> None:
        import numpy as np
        from profanity_check import profanity_check as package

        folds = package.model.calibrated_classifiers_
        self._vectorizer = package.vectorizer
        self._weights = np.stack([f.estimator.coef_.ravel() for f in folds], axis=1)
        self._bias = np.array([f.estimator.intercept_[0] for f in folds])
        self._slope = np.array([f.calibrators[0].a_ for f in folds])
        self._offset = np.array([f.calibrators[0].b_ for f in folds])

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        return float(self.score_texts([utterance])[0])

    def score_texts(self, texts: Sequence[str]):
        from scipy.special import expit

        margins = self._vectorizer.transform(list(texts)) @ self._weights + self._bias
        return expit(-(self._slope * margins + self._offset)).mean(axis=1)


CLASSIFIERS: dict[str, Callable[[], SafetyClassifier]] = {"profanity": ProfanityClassifier}
