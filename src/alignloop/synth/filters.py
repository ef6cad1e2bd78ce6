"""ALMoST's filters (SPEC §5): on generated queries, on responses, and on comparison pairs.

Queries: a candidate is dropped when it is empty, shorter than `min_chars`, longer than
`max_chars`, lacks final punctuation, repeats a kept query (same text up to case and spacing),
or has ROUGE-L F >= the threshold against any query kept so far (the seeds count as kept).
*Final punctuation*: after trailing spaces and closing quotes or brackets (straight or curly
quotes, ')', ']', '»') the last character is one of `final_punctuation` (default ". ? !"); a
query without it was most often cut off by the token limit.

ROUGE-L is the maintained `rouge-score` package's (Google Research): lower-cased alphanumeric
tokens, no stemming, F = 2·LCS / (len(a) + len(b)). Texts without Latin letters or digits have
no tokens and score 0 against everything.

Responses: dropped, in this order of reasons (each dropped response counts once, under the first
reason that applies): empty; contains a role marker ('Human:', 'User:', 'Assistant:', case as
written); says it does not know (a phrase of `unknown_phrases`, case-insensitive, curly
apostrophes read as straight ones); shorter than `min_chars`; ends with '?' or ':'; does not end
in '.' or '!'. The endings are read after trailing spaces and closing quotes or brackets.

Pairs: keep (better, worse) only if not (len(better) < len(worse) and len(better) < mean -
std_factor·std), lengths in characters, mean and population standard deviation over that query's
surviving responses (one per configuration); one pair per better configuration: the highest
ranked worse one whose pair is kept.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

CLOSERS = "\"')]\u201d\u2019\u00bb"
CURLY_APOSTROPHE = "\u2019"
_LIST_MARKER = re.compile(r"^(?:\d+\s*[.):]|[-*•]|#+)\s*")
_LABEL = re.compile(r"^(?:new\s+)?(?:question|query|request|user)\s*(?:\d+\s*)?:\s*", re.I)


def final_char(text: str) -> str:
    """The last character once spaces and closing quotes or brackets are stripped."""
    stripped = text.rstrip().rstrip(CLOSERS).rstrip()
    return stripped[-1:] if stripped else ""


def normalize(text: str) -> str:
    """Case and spacing folded: what counts as the same query."""
    return " ".join(text.lower().split())


def extract_query(generated: str) -> str:
    """The query in a model's reply: its first line that is not empty and not a lead-in ending
    with ':', without list markers ('11.', '-'), labels ('Question:') or wrapping quotes."""
    for line in generated.splitlines():
        text = _LABEL.sub("", _LIST_MARKER.sub("", line.strip())).strip()
        if len(text) >= 2 and text[0] in "\"'“" and text[-1] in "\"'”":
            text = text[1:-1].strip()
        if text and not text.endswith(":"):
            return text
    return ""


class _Tokenizer(Protocol):
    def tokenize(self, text: str) -> list[str]: ...


class _CachingTokenizer:
    """rouge-score's default tokenizer, remembering each text's tokens (a kept query is compared
    with every later candidate)."""

    def __init__(self) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._inner: _Tokenizer = DefaultTokenizer(use_stemmer=False)
        self._cache: dict[str, list[str]] = {}

    def tokenize(self, text: str) -> list[str]:
        if text not in self._cache:
            self._cache[text] = self._inner.tokenize(text)
        return self._cache[text]


class RougeL:
    """ROUGE-L F between texts, through rouge-score."""

    def __init__(self) -> None:
        from rouge_score.rouge_scorer import RougeScorer

        self.tokenizer = _CachingTokenizer()
        self._scorer = RougeScorer(["rougeL"], tokenizer=self.tokenizer)

    def f(self, reference: str, candidate: str) -> float:
        return self._scorer.score(reference, candidate)["rougeL"].fmeasure


def rouge_l_upper_bound(a: Counter, b: Counter) -> float:
    """2·overlap / (len(a) + len(b)) >= ROUGE-L F, since the LCS never exceeds the overlap of
    the token multisets: a cheap test that skips most exact computations."""
    total = a.total() + b.total()
    return 2 * sum((a & b).values()) / total if total else 0.0


@dataclass
class QueryFilter:
    """Keeps candidates one at a time in order; counts each dropped one under its reason."""

    min_chars: int
    max_chars: int
    final_punctuation: str
    rouge_threshold: float
    kept: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    _references: list[tuple[str, Counter]] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _rouge: RougeL = field(default_factory=RougeL)

    def add_reference(self, text: str) -> None:
        """A query later candidates must not repeat (a seed) without it being kept."""
        self._seen.add(normalize(text))
        self._references.append((text, Counter(self._rouge.tokenizer.tokenize(text))))

    def drop_reason(self, text: str) -> str | None:
        """Why `text` is dropped, or None if it would be kept."""
        if not text:
            return "empty"
        if len(text) < self.min_chars:
            return "too_short"
        if len(text) > self.max_chars:
            return "too_long"
        if final_char(text) not in self.final_punctuation:
            return "no_final_punctuation"
        if normalize(text) in self._seen:
            return "duplicate"
        if self.max_similarity(text) >= self.rouge_threshold:
            return "too_similar"
        return None

    def max_similarity(self, text: str) -> float:
        """The highest ROUGE-L F of `text` against the references, up to the threshold."""
        tokens = Counter(self._rouge.tokenizer.tokenize(text))
        best = 0.0
        for reference, counts in self._references:
            if rouge_l_upper_bound(tokens, counts) < self.rouge_threshold:
                continue
            best = max(best, self._rouge.f(reference, text))
            if best >= self.rouge_threshold:
                break
        return best

    def offer(self, text: str) -> bool:
        """Keep `text` if it passes (it then becomes a reference); say whether it was kept."""
        reason = self.drop_reason(text)
        if reason is not None:
            self.dropped[reason] += 1
            return False
        self.add_reference(text)
        self.kept.append(text)
        return True


@dataclass(frozen=True)
class ResponseRules:
    min_chars: int = 50
    unknown_phrases: tuple[str, ...] = ()
    role_markers: tuple[str, ...] = ()


RESPONSE_REASONS = (
    "empty",
    "role_marker",
    "does_not_know",
    "too_short",
    "ends_with_question_or_colon",
    "no_final_period_or_exclamation",
)


def response_drop_reason(text: str, rules: ResponseRules) -> str | None:
    """The first of RESPONSE_REASONS that applies to `text`, or None if it survives."""
    text = text.strip()
    if not text:
        return "empty"
    if any(marker in text for marker in rules.role_markers):
        return "role_marker"
    folded = text.lower().replace(CURLY_APOSTROPHE, "'")
    if any(
        phrase.lower().replace(CURLY_APOSTROPHE, "'") in folded for phrase in rules.unknown_phrases
    ):
        return "does_not_know"
    if len(text) < rules.min_chars:
        return "too_short"
    last = final_char(text)
    if last in "?:":
        return "ends_with_question_or_colon"
    if last not in ".!":
        return "no_final_period_or_exclamation"
    return None


def keeps_pair(better: int, worse: int, mean: float, std: float, std_factor: float) -> bool:
    """The heuristic length filter on one (better, worse) pair of response lengths."""
    return not (better < worse and better < mean - std_factor * std)


@dataclass
class PairChoice:
    pairs: list[tuple[int, int]]  # (better index, worse index) into the ranked survivors
    considered: int = 0
    dropped_by_length: int = 0
    dropped_one_per_better: int = 0


def choose_pairs(ranked: Sequence[str], length_filter: bool, std_factor: float) -> PairChoice:
    """Pairs of the ranked survivors of one query (best first): for each better one, the first
    worse one whose pair passes the length filter (or simply the next one, filter off)."""
    lengths = [len(text) for text in ranked]
    mean = statistics.fmean(lengths) if lengths else 0.0
    std = statistics.pstdev(lengths) if len(lengths) > 1 else 0.0
    choice = PairChoice([])
    for i in range(len(ranked)):
        chosen = None
        for j in range(i + 1, len(ranked)):
            choice.considered += 1
            if length_filter and not keeps_pair(lengths[i], lengths[j], mean, std, std_factor):
                choice.dropped_by_length += 1
            elif chosen is None:
                chosen = j
            else:
                choice.dropped_one_per_better += 1
        if chosen is not None:
            choice.pairs.append((i, chosen))
    return choice
