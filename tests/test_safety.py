"""The profanity classifier and the serving gate."""

from __future__ import annotations

import random

import numpy as np
from profanity_check import predict_prob

from alignloop.safety.classifiers import ProfanityClassifier
from alignloop.safety.gate import SAFE_RESPONSE, CannedReplies, SafetyGate, load_safe_topics

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
