"""The profanity classifier and the serving gate."""

from __future__ import annotations

import random

import numpy as np
import pytest
from profanity_check import predict_prob

from alignloop.safety.classifiers import ProfanityClassifier
from alignloop.safety.gate import (
    SAFE_RESPONSE,
    CannedReplies,
    SafetyGate,
    TopicGate,
    is_canned,
    load_safe_topics,
)

TEXTS = [
    "you are a fucking idiot",
    "hello there, how are you?",
    "I hate you, shut up",
    "",
    "what a lovely day for a walk in the park",
    "damn it",
]


def test_fast_profanity_scores_equal_the_packages_own():
    ours = ProfanityClassifier().score_texts(TEXTS)
    assert np.allclose(ours, predict_prob(TEXTS), atol=1e-12)


def test_gate_fires_on_profane_input_and_output_only():
    gate = SafetyGate(ProfanityClassifier(), 0.5, CannedReplies())
    assert gate.check_input([{"role": "user", "content": "you fucking idiot"}]).fired
    assert not gate.check_input([{"role": "user", "content": "hi, how are you?"}]).fired
    context = [{"role": "user", "content": "hi"}]
    assert gate.check_output(context, "shut up you piece of shit").fired
    assert not gate.check_output(context, "Hello! Nice to meet you.").fired


def test_canned_replies_offer_a_safe_topic_or_apologise():
    topics = load_safe_topics()
    assert len(topics) >= 10 and "gardening" in topics
    reply = CannedReplies("non_sequitur").pick(random.Random(0))
    assert reply.startswith("Hey, do you want to talk about something else?")
    assert any(reply.endswith(f"{t}?") for t in topics)
    assert CannedReplies("safe_response").pick(random.Random(0)) == SAFE_RESPONSE


class KeywordTopics:
    """A sensitive-topic stand-in with exact scores: 0.9 where a keyword occurs, else 0.1."""

    name = "keyword-topics"

    def __init__(self, *words: str):
        self.words = words

    def score(self, context, utterance: str) -> float:
        return float(self.score_batch([(context, utterance)])[0])

    def score_batch(self, pairs) -> np.ndarray:
        return np.array([0.9 if any(w in u.lower() for w in self.words) else 0.1 for _, u in pairs])


def test_apply_batch_gates_unsafe_inputs_and_candidates_and_keeps_the_rest():
    gate = SafetyGate(ProfanityClassifier(), 0.5, CannedReplies("safe_response"))
    contexts = [
        [{"role": "user", "content": "you fucking idiot"}],
        [{"role": "user", "content": "hi, how are you?"}],
        [{"role": "user", "content": "tell me about bread"}],
    ]
    replies = ["Hello!", "shut up you piece of shit", "Flour, water, salt and yeast."]
    outcomes = gate.apply_batch(contexts, replies)
    assert [o.gated for o in outcomes] == [True, True, False]
    assert [o.reply for o in outcomes] == [SAFE_RESPONSE, SAFE_RESPONSE, replies[2]]
    first, second = outcomes[0].checks, outcomes[1].checks
    assert [c.stage for c in first] == ["input", "output"]
    assert first[0].fired and not first[1].fired and second[1].fired and not second[0].fired
    assert is_canned(outcomes[0].reply) and not is_canned(outcomes[2].reply)
    # a baked-in model says the canned replies itself and may end them its own way
    assert is_canned("I'm sorry, I'd rather not talk about that. Can I help with anything else?")
    assert is_canned("Hey, do you want to talk about something else? How about we talk about")
    assert not is_canned("I'm sorry to hear that your printer stopped. Is it plugged in?")


def test_the_topic_gate_fires_on_sensitive_topics_at_its_own_threshold():
    topic = TopicGate(KeywordTopics("election", "vote"), threshold=0.55)
    gate = SafetyGate(ProfanityClassifier(), 0.5, CannedReplies(), topic=topic)
    check = gate.check_input([{"role": "user", "content": "Who should I vote for?"}])
    assert check.fired and check.score < 0.5 and check.topic_score == pytest.approx(0.9)
    assert check.as_record() == {"input_score": round(check.score, 6), "input_topic_score": 0.9}
    assert not gate.check_input([{"role": "user", "content": "Any bread tips?"}]).fired
    context = [{"role": "user", "content": "hi"}]
    assert gate.check_output(context, "The election is rigged, don't vote.").fired
    assert gate.describe() == {
        "classifier": ProfanityClassifier().name,
        "threshold": 0.5,
        "topic_classifier": "keyword-topics",
        "topic_threshold": 0.55,
    }
    strict = SafetyGate(
        ProfanityClassifier(), 0.5, CannedReplies(), topic=TopicGate(topic.classifier, 0.95)
    )
    assert not strict.check_input([{"role": "user", "content": "Who should I vote for?"}]).fired


def test_canned_replies_refuse_an_unknown_style():
    with pytest.raises(ValueError, match="non_sequitur"):
        CannedReplies("shrug")


def test_a_conversation_gets_the_same_canned_topic_whatever_order_turns_arrive_in():
    conversations = [
        [{"role": "user", "content": f"insult number {i}, you idiot"}] for i in range(12)
    ]
    first, second = (SafetyGate(ProfanityClassifier(), 0.5, CannedReplies(), seed=3) for _ in "ab")
    replies = [first.canned_reply(c) for c in conversations]
    assert [second.canned_reply(c) for c in reversed(conversations)] == replies[::-1]
    assert len(set(replies)) > 3  # the topic still varies between conversations
    other_seed = SafetyGate(ProfanityClassifier(), 0.5, CannedReplies(), seed=4)
    assert [other_seed.canned_reply(c) for c in conversations] != replies
