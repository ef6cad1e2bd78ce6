"""The labelling rule of SPEC.md §1: which bot replies are examples to imitate (positive) and
which to avoid (negative), from trusted feedback and the classifiers.

A bot reply is positive if a trusted user liked it or the reward classifier judges it good
with P >= tau_plus; negative if a trusted user disliked it, the reward classifier judges it bad
with P >= tau_minus, the safety classifier flags it, or a trusted person labelled it unsafe.
Negative wins a conflict (safety first). Untrusted users' likes and dislikes are ignored.
Conversations are adversarial when their user is distrusted, they are red-team conversations,
or a human message in them is flagged: their human messages are never targets, but their bot
failures are kept as negatives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class LabelConfig(BaseModel):
    """Thresholds of the labelling rule (SPEC.md §1)."""

    model_config = ConfigDict(extra="forbid")

    unsafe_threshold: float = Field(
        0.5, ge=0, le=1, description="P(unsafe) at or above which a message counts flagged."
    )
    tau_plus: float = Field(
        0.9, ge=0, le=1, description="Reward classifier P(good) that makes a reply positive."
    )
    tau_minus: float = Field(
        0.9, ge=0, le=1, description="Reward classifier P(bad) that makes a reply negative."
    )


def adversarial_conversations(
    messages: pd.DataFrame, trusted: pd.Series, unsafe_threshold: float
) -> pd.Index:
    """Conversation ids whose user is distrusted, that are red-team, or with a flagged human
    message."""
    distrusted = messages["user_id"].map(trusted).eq(False)
    flagged_human = (messages["sender"] == "human") & (messages["p_unsafe"] >= unsafe_threshold)
    hit = distrusted | (messages["mode"] == "redteam") | flagged_human
    return pd.Index(messages.loc[hit, "conversation_id"].unique())


def label_bot_messages(
    messages: pd.DataFrame,
    feedback: pd.DataFrame,
    safety_labels: pd.DataFrame,
    trusted: pd.Series,
    config: LabelConfig,
) -> pd.DataFrame:
    """One row per bot reply that gets a label: message_id, label ('positive'/'negative'),
    reason, adversarial. `messages` needs p_unsafe (and p_good where a reward classifier ran);
    `trusted` maps user_id -> bool."""
    bots = messages[(messages["sender"] == "bot") & ~messages["safety_gated"].astype(bool)]
    by_trusted = feedback[feedback["user_id"].map(trusted).eq(True)]
    liked = set(by_trusted.loc[by_trusted["kind"] == "like", "message_id"])
    disliked = set(by_trusted.loc[by_trusted["kind"] == "dislike", "message_id"])
    people = safety_labels[safety_labels["labeler_kind"] != "classifier"]
    if "user_id" in people:
        people = people[people["user_id"].map(trusted).ne(False)]
    labelled_unsafe = set(people.loc[people["label"] == "unsafe", "message_id"])
    ids = bots["message_id"]
    p_good = bots["p_good"] if "p_good" in bots else pd.Series(np.nan, index=bots.index)
    reasons = {
        "unsafe_classifier": bots["p_unsafe"] >= config.unsafe_threshold,
        "unsafe_label": ids.isin(labelled_unsafe),
        "disliked_by_trusted": ids.isin(disliked),
        "reward_bad": (1 - p_good) >= config.tau_minus,
        "liked_by_trusted": ids.isin(liked),
        "reward_good": p_good >= config.tau_plus,
    }
    negative = reasons["unsafe_classifier"] | reasons["unsafe_label"]
    negative |= reasons["disliked_by_trusted"] | reasons["reward_bad"]
    positive = (reasons["liked_by_trusted"] | reasons["reward_good"]) & ~negative
    # A reply that lost a regeneration vote is not bad by itself: it becomes half of a pair.
    superseded = bots["superseded_by_id"].notna()
    keep = negative | (positive & ~superseded)
    reason = pd.Series("", index=bots.index)
    for name, hit in reversed(list(reasons.items())):  # the first listed reason wins
        reason = reason.mask(hit, name)
    adversarial = adversarial_conversations(messages, trusted, config.unsafe_threshold)
    return pd.DataFrame(
        {
            "message_id": ids[keep].to_numpy(),
            "conversation_id": bots.loc[keep, "conversation_id"].to_numpy(),
            "user_id": bots.loc[keep, "user_id"].to_numpy(),
            "label": np.where(negative[keep], "negative", "positive"),
            "reason": reason[keep].to_numpy(),
            "adversarial": bots.loc[keep, "conversation_id"].isin(adversarial).to_numpy(),
        }
    )
