"""Finding the helpers and ignoring the trolls (SPEC.md §2, Ju et al. 2022), as pure functions.

The data is (user, example, label) triples: `users[i]` gave `labels[i]` (1 = unsafe) to example
i. A `FitPredict` trains a classifier on some examples with the given labels and returns
P(label = 1) for others; the methods only see it through `kfold_probabilities`, so any
classifier works (the benchmarks use the MiniLM embedding classifier).

Every method returns a `Cleaning`: which examples to keep, their (possibly flipped) labels, and
a troll score per example's user (higher = less trusted) for the reports.

`alignloop` adds two checks the published methods lack (method "alignloop"):
- one-way labellers: a user who gave the same label to every one of at least `one_way_min`
  examples is distrusted whatever the classifier says. Gaslight, safe and unsafe trolls label
  everything one way, and a classifier trained on their labels cannot see it (it learns to
  agree with them, and then blames the helpers). The population's label rate cannot serve as
  the yardstick either: half the population may be such trolls. An honest labeller who sees
  both kinds of example is rarely one-way over many (0.7^10 = 3% for 10 examples at a 30%
  unsafe rate), so the check costs a few helpers' data;
- iterated per-user removal: after distrusting users, the k-fold classifier is retrained on
  what is left, so its verdicts on the remaining users improve round by round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""fit_predict(train_index, train_labels, predict_index) -> P(label = 1) on predict_index."""


@dataclass(frozen=True)
class TrustConfig:
    """Thresholds of the cleaning methods (SPEC.md §2); the defaults are ours (DESIGN)."""

    k: int = field(default=3, metadata={"help": "Folds of the k-fold predictions."})
    theta: float = field(
        default=0.3, metadata={"help": "Per-user removal: drop users who disagree more often."}
    )
    alpha: float = field(
        default=0.5, metadata={"help": "Soft PURR: weight of the example's own agreement."}
    )
    tau: float = field(default=0.5, metadata={"help": "Soft PURR: drop examples scoring below."})
    one_way_min: int = field(
        default=5,
        metadata={"help": "Distrust users who gave one label to all of at least this many."},
    )
    margin: float = field(
        default=0.15,
        metadata={
            "help": "alignloop: distrust users who disagree more often than the trusted "
            "examples' rate plus this."
        },
    )
    example_confidence: float = field(
        default=0.8,
        metadata={"help": "alignloop: drop examples the classifier contradicts this surely."},
    )
    rounds: int = field(default=5, metadata={"help": "Rounds of iterated per-user removal."})
    seed: int = field(default=0, metadata={"help": "Seed of the fold assignment."})


@dataclass
class Cleaning:
    keep: np.ndarray  # bool [n]: examples to train on
    labels: np.ndarray  # int [n]: labels to train on (flipped where a method flips)
    troll_score: np.ndarray  # float [n]: distrust of the example's user (0 = trusted)
    original: np.ndarray  # int [n]: the labels the users gave

    @property
    def flagged(self) -> np.ndarray:
        """Examples the method distrusts: removed, or relabelled."""
        return ~self.keep | (self.labels != self.original)


def kfold_probabilities(
    fit_predict: FitPredict, labels: np.ndarray, k: int, seed: int, index: np.ndarray | None = None
) -> np.ndarray:
    """P(label = 1) for every example in `index` (default all) from a model trained on the
    other k-1 folds: each example is judged by a model that never saw its label."""
    index = np.arange(len(labels)) if index is None else index
    folds = np.random.default_rng(seed).permutation(len(index)) % k
    probs = np.full(len(labels), np.nan)
    for fold in range(k):
        held, train = index[folds == fold], index[folds != fold]
        probs[held] = fit_predict(train, labels[train], held)
    return probs


def agreement(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """f(x) = y p + (1 - y)(1 - p): the probability the classifier gives the user's label."""
    return labels * probs + (1 - labels) * (1 - probs)


def user_means(values: np.ndarray, users: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Per example, the mean of `values` over its user's examples (or the user's others)."""
    codes, inverse = np.unique(users, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(codes))
    counts = np.bincount(inverse, minlength=len(codes)).astype(float)
    if not exclude_self:
        return (sums / counts)[inverse]
    others = counts[inverse] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums[inverse] - values) / others
    return np.where(others > 0, means, values)  # a user's only example stands for itself


def disagrees(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (probs >= 0.5).astype(int) != labels


def one_way_labellers(labels: np.ndarray, users: np.ndarray, min_items: int) -> np.ndarray:
    """Per example: did its user give one and the same label to all of at least `min_items`
    examples?"""
    codes, inverse = np.unique(users, return_inverse=True)
    ones = np.bincount(inverse, weights=labels, minlength=len(codes))
    counts = np.bincount(inverse, minlength=len(codes))
    one_way = (counts >= min_items) & ((ones == 0) | (ones == counts))
    return one_way[inverse]


# --- the methods ----------------------------------------------------------------------------


def standard(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    """Keep everything (the baseline)."""
    return Cleaning(np.ones(len(labels), bool), labels, np.zeros(len(labels)), labels)


def per_example_removal(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    probs = kfold_probabilities(fit_predict, labels, config.k, config.seed)
    wrong = disagrees(probs, labels)
    return Cleaning(~wrong, labels, user_means(wrong.astype(float), users), labels)


def per_example_flip(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    probs = kfold_probabilities(fit_predict, labels, config.k, config.seed)
    wrong = disagrees(probs, labels)
    flipped = np.where(wrong, 1 - labels, labels)
    return Cleaning(
        np.ones(len(labels), bool), flipped, user_means(wrong.astype(float), users), labels
    )


def per_user_removal(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    probs = kfold_probabilities(fit_predict, labels, config.k, config.seed)
    rate = user_means(disagrees(probs, labels).astype(float), users)
    return Cleaning(rate <= config.theta, labels, rate, labels)


def per_user_and_example(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    probs = kfold_probabilities(fit_predict, labels, config.k, config.seed)
    wrong = disagrees(probs, labels)
    rate = user_means(wrong.astype(float), users)
    return Cleaning((rate <= config.theta) & ~wrong, labels, rate, labels)


def soft_purr(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    """score(x) = alpha f(x) + (1 - alpha) g(U(x) minus x); drop x when score(x) < tau."""
    probs = kfold_probabilities(fit_predict, labels, config.k, config.seed)
    f = agreement(probs, labels)
    score = config.alpha * f + (1 - config.alpha) * user_means(f, users, exclude_self=True)
    return Cleaning(score >= config.tau, labels, 1 - user_means(f, users), labels)


def alignloop_method(labels, users, fit_predict, config: TrustConfig) -> Cleaning:
    """One-way labellers out, then per-user removal iterated on the users still trusted, then
    removal of the examples the classifier confidently contradicts (see the module docstring).

    The per-user bar is relative: a user is distrusted when their disagreement rate exceeds
    the trusted examples' overall rate by `margin`, so a weak classifier (many honest
    disagreements) does not cost the helpers their data."""
    trusted = ~one_way_labellers(labels, users, config.one_way_min)
    troll_score = (~trusted).astype(float)
    probs = np.full(len(labels), 0.5)
    for round_ in range(config.rounds):
        index = np.flatnonzero(trusted)
        probs[index] = kfold_probabilities(
            fit_predict, labels, config.k, config.seed + round_, index
        )[index]
        wrong = disagrees(probs[index], labels[index]).astype(float)
        rate = user_means(wrong, users[index])
        troll_score[index] = rate
        distrusted = index[rate > wrong.mean() + config.margin]
        if not len(distrusted):
            break
        trusted[distrusted] = False
    confidently_wrong = agreement(probs, labels) < 1 - config.example_confidence
    return Cleaning(trusted & ~confidently_wrong, labels, troll_score, labels)


METHODS: dict[str, Callable[..., Cleaning]] = {
    "standard": standard,
    "per_example_removal": per_example_removal,
    "per_example_flip": per_example_flip,
    "per_user_removal": per_user_removal,
    "per_user_and_example": per_user_and_example,
    "soft_purr": soft_purr,
    "alignloop": alignloop_method,
}


def clean(
    method: str,
    labels: np.ndarray,
    users: np.ndarray,
    fit_predict: FitPredict,
    config: TrustConfig | None = None,
) -> Cleaning:
    """Run one cleaning method by name on (user, label) data."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; pick one of {', '.join(METHODS)}")
    labels = np.asarray(labels).astype(int)
    return METHODS[method](labels, np.asarray(users), fit_predict, config or TrustConfig())


# --- deployment data ------------------------------------------------------------------------
# On organic data nobody hands us (user, example, label) triples with a ground truth; what a
# user does is judged against a safety classifier and against the other users (SPEC.md §2:
# f = the classifier's agreement with the user's behaviour, troll_score = 1 - g(all of u's)).


class DeploymentTrustConfig(BaseModel):
    """How user behaviour on deployment data becomes a troll score (DESIGN: our defaults)."""

    model_config = ConfigDict(extra="forbid")

    unsafe_threshold: float = Field(
        0.5, ge=0, le=1, description="P(unsafe) at or above which a message counts flagged."
    )
    smoothing: float = Field(
        3.0, ge=0, description="Pseudo-acts at the population's mean agreement added per user."
    )
    empirical_smoothing: bool = Field(
        True,
        description="Add more pseudo-acts where a signal tells users apart no better than its "
        "noise (empirical Bayes: within-user over between-user variance, at least `smoothing`), "
        "so a signal at chance, such as a thumbs model trained on a few thumbs, distrusts nobody.",
    )
    min_feedback: int = Field(
        5, ge=1, description="Likes and dislikes a user gives before the like-share test applies."
    )
    typicality_weight: float = Field(
        0.15,
        ge=0,
        description="Exponent on the like-share typicality (0 ignores it; 0.15 makes a 1% "
        "binomial tail halve a user's trust).",
    )
    max_troll_score: float = Field(
        0.45, ge=0, le=1, description="Users whose troll score is above this are distrusted."
    )
    judge_red_teaming: bool = Field(
        True,
        description="Hold red-teaming against a user like any act: their probing messages "
        "(f = 1 - P(unsafe)) and 'unsafe' labels the classifier does not share. Off: only "
        "their 'safe' labels are judged, since probing is what red-teamers are asked for and "
        "an 'unsafe' label the classifier misses is what red-teaming exists to find.",
    )
    min_scale: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="A user's shortfall in a signal is (mean - theirs) / (mean - 0.5), the "
        "scale taken at least this. Where a signal's mean is near chance (a thumbs model "
        "trained on few thumbs), 0 lets a hair below the mean distrust a user outright.",
    )
    labels_judged_by: Literal["classifier", "peers"] = Field(
        "classifier",
        description="What people's safety labels are held against: the safety classifier's "
        "P(unsafe) of the reply ('classifier'), or the labels the other users gave to replies "
        "like it ('peers': a model on the replies' words trained on the other users' labels, "
        "as for thumbs), which can learn the compliance a profanity-style classifier misses.",
    )
    thumbs_features: Literal["words_and_shape", "words"] = Field(
        "words_and_shape",
        description="What the model of the other users' thumbs sees of a reply: its words and "
        "its shape (whether it ends a sentence, its length), or its words alone. People "
        "dislike a reply cut off at the length limit, which words alone cannot show.",
    )
    red_team_thumbs: Literal["apart", "own_signal", "left_out", "with_everyday"] = Field(
        "apart",
        description="How the thumbs given in red-team conversations are judged: 'apart' (held "
        "to the other red-teamers' thumbs on red-team replies, in a model of their own, and "
        "averaged with the user's everyday thumbs), 'own_signal' (the same model, but a signal "
        "of its own, measured from the red-teamers' mean rather than everyone's), 'left_out', "
        "or 'with_everyday' (held to everyday raters, whose consensus an honest red-teamer, "
        "disliking the fluent compliance they would like, seems to flip).",
    )


def behaviour_agreement(
    messages: pd.DataFrame,
    feedback: pd.DataFrame,
    labels: pd.DataFrame,
    judge_red_teaming: bool = True,
    judge_labels: bool = True,
) -> pd.DataFrame:
    """One row per judged act (user_id, f): the classifier's agreement with what the user did.

    `messages` has message_id, user_id, mode, sender, p_unsafe; `feedback` message_id,
    user_id, kind, reason; `labels` (people's safety labels) message_id, user_id, label.
    - a human message: f = 1 - P(unsafe) (asking for harm is a troll's act);
    - a like on a bot message: f = 1 - P(unsafe of the reply); a dislike for being rude or
      inappropriate: f = P(unsafe) (other dislikes say nothing the classifier can check);
    - a safety label: f = P(unsafe) for 'unsafe', 1 - P(unsafe) for 'safe'.
    Without `judge_red_teaming`, messages of red-team conversations and 'unsafe' labels are
    not judged: the classifier seeing no harm where a red-teamer did is no evidence against
    them, while a 'safe' label on a reply the classifier flags still is. Without
    `judge_labels`, no label is judged here (the other users' labels judge them instead).
    """
    p = messages.set_index("message_id")["p_unsafe"]
    human = messages[messages["sender"] == "human"]
    if not judge_labels:
        labels = labels.iloc[0:0]
    if not judge_red_teaming:
        human = human[human["mode"] != "redteam"]
        labels = labels[labels["label"] != "unsafe"]
    acts = [pd.DataFrame({"user_id": human["user_id"], "f": 1 - human["p_unsafe"]})]
    judged = feedback[(feedback["kind"] == "like") | (feedback["reason"] == "rude")]
    p_reply = judged["message_id"].map(p)
    f_feedback = np.where(judged["kind"] == "like", 1 - p_reply, p_reply)
    acts.append(pd.DataFrame({"user_id": judged["user_id"], "f": f_feedback}))
    p_label = labels["message_id"].map(p)
    f_label = np.where(labels["label"] == "unsafe", p_label, 1 - p_label)
    acts.append(pd.DataFrame({"user_id": labels["user_id"], "f": f_label}))
    return pd.concat(acts, ignore_index=True).dropna()


def hashed_words(texts: list[str]):
    """Bag-of-words features of reply texts (hashed, no vocabulary to fit or store)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=1 << 18, ngram_range=(1, 2), alternate_sign=False
    ).transform(texts)


SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s*$")
SHAPE_WEIGHT = 3.0  # the shape columns against ~20 word columns per reply, under one penalty


def reply_shape(texts: list[str]):
    """Per reply, what a reader sees before any word: whether it ends a sentence (a reply cut
    off at the length limit does not), and its length in words (up to 60, scaled to 1)."""
    from scipy.sparse import csr_matrix

    rows = [
        (float(bool(SENTENCE_END.search(text))), min(len(text.split()), 60) / 60) for text in texts
    ]
    return csr_matrix(np.array(rows, dtype=float).reshape(len(texts), 2) * SHAPE_WEIGHT)


def words_and_shape(texts: list[str]):
    """Hashed words plus the reply's shape (`reply_shape`): people's thumbs follow whether a
    reply was cut off mid-sentence as much as its words, and a bag of words cannot see that."""
    from scipy.sparse import hstack

    return hstack([hashed_words(texts), reply_shape(texts)]).tocsr()


FEATURIZERS = {"words_and_shape": words_and_shape, "words": hashed_words}


def peer_consensus(
    users: np.ndarray,
    texts: list[str],
    said: np.ndarray,
    k: int = 3,
    seed: int = 0,
    featurize=hashed_words,
) -> pd.DataFrame:
    """One row per judgement (user_id, f): how likely the other users would have said the same
    (`said` 1 or 0) of that text. A model on the texts' words is trained on the judgements of
    the users outside one of k folds of users and scores the judgements inside it, so a user is
    never judged by a model that saw their own."""
    from sklearn.linear_model import LogisticRegression

    if not len(said):
        return pd.DataFrame({"user_id": [], "f": []})
    people = np.unique(users)
    fold_of = dict(
        zip(people, np.random.default_rng(seed).permutation(len(people)) % k, strict=True)
    )
    folds = np.array([fold_of[u] for u in users])
    x = featurize(texts)
    p_said = np.full(len(said), said.mean())
    for fold in range(k):
        train, held = folds != fold, folds == fold
        if held.any() and len(np.unique(said[train])) == 2:
            model = LogisticRegression(max_iter=1000).fit(x[train], said[train])
            p_said[held] = model.predict_proba(x[held])[:, 1]
    return pd.DataFrame({"user_id": users, "f": np.where(said == 1, p_said, 1 - p_said)})


def thumbs_consensus(
    feedback: pd.DataFrame,
    reply_text: pd.Series,
    k: int = 3,
    seed: int = 0,
    featurize=words_and_shape,
) -> pd.DataFrame:
    """One row per like or dislike (user_id, f): how likely the other users would have given the
    same thumb to that reply (`peer_consensus`, on the reply's words and shape). Flippers (who
    like bad replies and dislike good ones) and coin-flip raters score low; `reply_text` maps
    message_id -> text."""
    rated = feedback[feedback["kind"].isin(["like", "dislike"])]
    texts = rated["message_id"].map(reply_text).fillna("").tolist()
    liked = (rated["kind"] == "like").to_numpy().astype(int)
    return peer_consensus(rated["user_id"].to_numpy(), texts, liked, k, seed, featurize)


def label_consensus(
    labels: pd.DataFrame, reply_text: pd.Series, k: int = 3, seed: int = 0, featurize=hashed_words
) -> pd.DataFrame:
    """One row per safety label a person gave (user_id, f): how likely the other users would
    have labelled that reply the same (`peer_consensus`). Red-teamers who flip their labels
    score low, while an honest 'unsafe' on a compliant reply the safety classifier cannot see
    ("You can steal a car by ...") agrees with the other honest red-teamers."""
    texts = labels["message_id"].map(reply_text).fillna("").tolist()
    unsafe = (labels["label"] == "unsafe").to_numpy().astype(int)
    return peer_consensus(labels["user_id"].to_numpy(), texts, unsafe, k, seed, featurize)


def noise_to_signal(acts: pd.DataFrame) -> float:
    """The pseudo-acts of empirical-Bayes shrinkage for one signal: the variance of one act
    within a user over the variance of users' true means (method of moments); infinite where
    users' means spread no more than their acts' noise alone would spread them."""
    grouped = acts.groupby("user_id")["f"]
    counts, means = grouped.count(), grouped.mean()
    if len(means) < 3 or len(acts) <= len(means):
        return 0.0
    deviations = acts["f"] - acts["user_id"].map(means)
    within = float((deviations**2).sum()) / (len(acts) - len(means))
    between = float(means.var(ddof=1)) - within * float((1 / counts).mean())
    return within / between if between > 0 else np.inf


def _smoothed_mean(
    acts: pd.DataFrame, users: pd.Index, pseudo: float, empirical: bool = False
) -> tuple[pd.Series, float]:
    """Per user, the mean of f with `pseudo` acts at the population's mean added (more where
    `empirical` and the signal is noisier than that); and that mean."""
    prior = float(acts["f"].mean()) if len(acts) else 1.0
    if empirical and len(acts):
        pseudo = max(pseudo, noise_to_signal(acts))
    if not np.isfinite(pseudo):
        return pd.Series(prior, index=users), prior
    grouped = acts.groupby("user_id")["f"]
    mean = (grouped.sum() + pseudo * prior) / (grouped.count() + pseudo)
    return mean.reindex(users).fillna(prior), prior


def _shortfall(agreement: pd.Series, prior: float, min_scale: float = 0.0) -> pd.Series:
    """0 for a user as agreeable as the average, 1 for one no better than chance (0.5); the
    scale is at least `min_scale`, so a signal near chance cannot give full shortfalls."""
    return ((prior - agreement) / max(prior - 0.5, min_scale, 1e-6)).clip(0, 1)


def like_share_typicality(feedback: pd.DataFrame, min_events: int) -> pd.Series:
    """Per user, how typical their share of likes among likes and dislikes is next to the other
    users' (a two-sided binomial tail, 1 = typical): always-like, always-dislike and coin-flip
    raters stand out once they have rated `min_events` replies."""
    from scipy.stats import binom

    rated = feedback[feedback["kind"].isin(["like", "dislike"])]
    per_user = rated.assign(like=rated["kind"] == "like").groupby("user_id")["like"]
    likes, counts = per_user.sum(), per_user.count()
    others_share = ((likes.sum() - likes) / (counts.sum() - counts).clip(lower=1)).clip(0.01, 0.99)
    tail = 2 * np.minimum(
        binom.cdf(likes, counts, others_share), binom.sf(likes - 1, counts, others_share)
    )
    return pd.Series(np.where(counts >= min_events, np.minimum(tail, 1.0), 1.0), counts.index)


def in_red_team(feedback: pd.DataFrame, messages: pd.DataFrame) -> np.ndarray:
    """Per feedback row, whether it was given in a red-team conversation."""
    mode = feedback["message_id"].map(messages.set_index("message_id")["mode"])
    return (mode == "redteam").to_numpy()


def everyday_feedback(feedback: pd.DataFrame, messages: pd.DataFrame) -> pd.DataFrame:
    """The feedback given outside red-team conversations: what the like-share test judges, and
    the thumbs consensus of everyday raters. A red-teamer rates the answers to attacks, where an
    honest one dislikes the finished, fluent compliance that everyday raters would like."""
    return feedback[~in_red_team(feedback, messages)]


def judged_thumbs(
    feedback: pd.DataFrame, red_team: np.ndarray, texts: pd.Series, config: DeploymentTrustConfig
) -> pd.DataFrame:
    """The thumbs consensus acts (`thumbs_consensus`), the thumbs given in red-team
    conversations (`red_team`, per feedback row) as `config.red_team_thumbs` says: held to
    everyday raters, left out, or held apart to the other red-teamers' (a model of their own)."""
    featurize = FEATURIZERS[config.thumbs_features]
    if config.red_team_thumbs == "with_everyday":
        return thumbs_consensus(feedback, texts, featurize=featurize)
    groups = [feedback[~red_team]] + (
        [feedback[red_team]] if config.red_team_thumbs == "apart" else []
    )
    return pd.concat([thumbs_consensus(group, texts, featurize=featurize) for group in groups])


def red_team_thumbs_signal(
    feedback: pd.DataFrame, red_team: np.ndarray, texts: pd.Series, config: DeploymentTrustConfig
) -> pd.DataFrame:
    """The thumbs consensus acts of red-team conversations alone (`red_team_thumbs:
    own_signal`): early on their model is fed by a few red-teamers' thumbs and agrees less
    than the everyday raters' model does, so an honest red-teamer is measured against the
    other red-teamers' mean, not everyone's."""
    featurize = FEATURIZERS[config.thumbs_features]
    return thumbs_consensus(feedback[red_team], texts, featurize=featurize)


def deployment_trust(
    messages: pd.DataFrame,
    feedback: pd.DataFrame,
    labels: pd.DataFrame,
    config: DeploymentTrustConfig,
) -> pd.DataFrame:
    """Per user: troll_score in [0, 1], trusted, and the signals behind it (agreement with the
    classifier, agreement with the other users' thumbs and, where `labels_judged_by` is
    'peers', safety labels; like-share typicality, share of flagged messages, acts judged)."""
    users = pd.Index(messages["user_id"].unique()).union(feedback["user_id"].unique())
    users = users.rename("user_id")
    by_peers = config.labels_judged_by == "peers"
    acts = behaviour_agreement(messages, feedback, labels, config.judge_red_teaming, not by_peers)
    texts = messages.set_index("message_id")["text"]
    pseudo, empirical = config.smoothing, config.empirical_smoothing
    classifier, classifier_prior = _smoothed_mean(acts, users, pseudo, empirical)
    red_team = in_red_team(feedback, messages)
    thumbs = judged_thumbs(feedback, red_team, texts, config)
    others, others_prior = _smoothed_mean(thumbs, users, pseudo, empirical)
    signals = [(classifier, classifier_prior), (others, others_prior)]
    if config.red_team_thumbs == "own_signal":
        red_thumbs = red_team_thumbs_signal(feedback, red_team, texts, config)
        red_users = pd.Index(red_thumbs["user_id"].unique())
        red, red_prior = _smoothed_mean(red_thumbs, red_users, pseudo, empirical)
        signals.append((red.reindex(users).fillna(red_prior), red_prior))
    peers, peers_prior = _smoothed_mean(label_consensus(labels, texts), users, pseudo, empirical)
    human = messages[messages["sender"] == "human"]
    flagged = (human["p_unsafe"] >= config.unsafe_threshold).groupby(human["user_id"]).mean()
    table = pd.DataFrame(index=users)
    table["classifier_agreement"] = classifier
    table["thumbs_agreement"] = others
    table["label_agreement"] = peers
    shared = feedback if config.red_team_thumbs == "with_everyday" else feedback[~red_team]
    typicality = like_share_typicality(shared, config.min_feedback).reindex(users).fillna(1.0)
    table["like_share_typicality"] = typicality
    table["flagged_share"] = flagged.reindex(users).fillna(0.0)
    table["acts"] = acts.groupby("user_id")["f"].count().reindex(users).fillna(0).astype(int)
    if by_peers:
        signals.append((peers, peers_prior))
    trust = pd.Series(1.0, index=users)
    for signal, prior in signals:
        trust *= 1 - _shortfall(signal, prior, config.min_scale)
    table["troll_score"] = 1 - trust * typicality.clip(0, 1) ** config.typicality_weight
    table["trusted"] = table["troll_score"] <= config.max_troll_score
    return table.reset_index()
