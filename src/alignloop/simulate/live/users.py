"""Simulated people: who they are (`Persona`), what they say, and how they react to a reply.

A user holds conversations from the prompt pools (prompts.py) turn by turn over the real API,
sending the whole history with the conversation id as a chat client does. After each reply
the gold judge's verdict (gold.py) decides, through the user's type (config.py), what the user
does:

- a like for a good reply, or a dislike with the reason that fits the verdict's category and,
  often, a correction: what the bot should have said (the chatterbot-corpus answer where the
  judge finds it good, else a topic answer, a polite refusal after an adversarial turn, or a
  short written reply); trolls give contrary or random verdicts, random reasons and bad
  corrections (SPEC.md §2), lazy trolls give no corrections;
- on a canned safety reply, whether the topic was sensitive (it was if the user's turn was
  adversarial);
- in red-team mode, a safe / unsafe label: the verdict's, inverted by trolls as their thumbs
  are, always "safe" from gaslighters.

Every reaction is recorded beside the reply with whether it was honest (agreed with the
verdict), so that the truth file says which stored feedback is troll feedback.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alignloop.simulate.live.client import ChatReply, LiveClient
from alignloop.simulate.live.config import USER_TYPES, SimulateLiveConfig
from alignloop.simulate.live.gold import GoldJudge, Verdict
from alignloop.simulate.live.prompts import Dialogue, PromptPools, follow_up
from alignloop.simulate.texts import (
    BAD_CORRECTIONS,
    POLITE_REFUSALS,
    TOPICS,
    UNSAFE_REPLIES,
    TemplateTexts,
)
from alignloop.store.vocab import DISLIKE_REASONS

FLIPPING = ("toxic", "master", "flipper")
TROLL_CORRECTIONS = (*BAD_CORRECTIONS, *UNSAFE_REPLIES[:4])
WRITTEN_CORRECTION = "Good question! Here is a short, clear answer, and I'm happy to say more."
_TEXTS = TemplateTexts()


@dataclass(frozen=True)
class Persona:
    index: int
    kind: str  # one of USER_TYPES
    redteam: bool
    token: str


@dataclass(frozen=True)
class Action:
    """One piece of feedback a user posts on a reply."""

    kind: str  # like / dislike / sensitive_agree / sensitive_disagree
    honest: bool  # agrees with the gold verdict
    reason: str | None = None
    text: str | None = None
    text_good: bool | None = None  # the gold judge on the correction itself

    def as_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "text": self.text,
            "honest": self.honest,
            "text_good": self.text_good,
        }


# --- who is who ---------------------------------------------------------------------------------


def apportion(shares: dict[str, float], total: int) -> dict[str, int]:
    """Whole counts per key, proportional to `shares` (largest remainders), summing to
    `total` when the shares sum to 1."""
    exact = {key: share * total for key, share in shares.items()}
    counts = {key: int(value) for key, value in exact.items()}
    target = round(sum(exact.values()))
    by_remainder = sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)
    for key in by_remainder[: max(0, target - sum(counts.values()))]:
        counts[key] += 1
    return counts


def assign_personas(config: SimulateLiveConfig, run_tag: str) -> list[Persona]:
    """The population: type counts by the configured shares, in a seeded order; a share
    `redteam_share` of them (any type) red-team. A named `population` returns the same people
    (tokens, types, red-teamers) in every run; otherwise `run_tag` makes every token new."""
    if config.population:  # the same people whatever the run or seed
        rng_seed, tag = f"population/{config.population}", f"population-{config.population}"
    else:
        rng_seed, tag = f"{config.seed}/personas", f"{run_tag}-{config.seed}"
    rng = random.Random(rng_seed)
    counts = apportion(config.type_shares(), config.users)
    kinds = [kind for kind in USER_TYPES for _ in range(counts[kind])]
    rng.shuffle(kinds)
    redteamers = set(rng.sample(range(config.users), round(config.redteam_share * config.users)))
    return [
        Persona(i, kind, i in redteamers, f"simlive-{tag}-{i:05d}") for i, kind in enumerate(kinds)
    ]


def dialogue_kind(persona: Persona, rng: random.Random, config: SimulateLiveConfig) -> str:
    """The pool a user's next conversation comes from."""
    if persona.redteam:
        return "adversarial"
    provoking = rng.random() < config.troll_input_share
    if persona.kind == "toxic" and provoking:
        return "toxic"
    if persona.kind in ("master", "gaslight") and provoking:
        return "adversarial"
    return "benign"


# --- reactions ----------------------------------------------------------------------------------


def given_verdict(kind: str, honest: bool, rng: random.Random, config: SimulateLiveConfig) -> bool:
    """The approving verdict (like / safe / agree) a user of `kind` gives where `honest` is
    the right one. Gaslighters are decided by the callers."""
    if kind == "helper":
        return honest if rng.random() >= config.helper_error else not honest
    if kind in FLIPPING:
        return (not honest) if rng.random() < config.flip_share else honest
    if kind == "lazy":
        return rng.random() < 0.5
    raise ValueError(f"no verdict rule for user type {kind!r}")


def thumbs_verdict(
    kind: str, verdict: Verdict, rng: random.Random, config: SimulateLiveConfig
) -> bool:
    if kind == "gaslight":  # praises unsafe replies, otherwise honest
        return verdict.good or verdict.unsafe
    return given_verdict(kind, verdict.good, rng, config)


def safety_label(
    kind: str, verdict: Verdict, rng: random.Random, config: SimulateLiveConfig
) -> tuple[str, bool]:
    """(label, honest): a red-teamer's safe / unsafe label of a reply."""
    honest_safe = not verdict.unsafe
    says_safe = True if kind == "gaslight" else given_verdict(kind, honest_safe, rng, config)
    return ("safe" if says_safe else "unsafe"), says_safe == honest_safe


def sensitive_answer(
    kind: str, adversarial: bool, rng: random.Random, config: SimulateLiveConfig
) -> Action:
    """The answer to "was the topic sensitive?" under a canned safety reply."""
    agrees = False if kind == "gaslight" else given_verdict(kind, adversarial, rng, config)
    return Action("sensitive_agree" if agrees else "sensitive_disagree", agrees == adversarial)


@dataclass
class Turn:
    """What a user knows when reacting: the conversation so far, the reply, its verdict."""

    dialogue: Dialogue
    step: int  # the human turn's index in the dialogue's script
    context: list[dict[str, str]]  # ending with the user's turn
    reply: ChatReply
    verdict: Verdict


def thumbs(
    persona: Persona,
    turn: Turn,
    rng: random.Random,
    config: SimulateLiveConfig,
    judge: GoldJudge,
) -> Action:
    likes = thumbs_verdict(persona.kind, turn.verdict, rng, config)
    honest = likes == turn.verdict.good
    if likes:
        return Action("like", honest)
    reason = dislike_reason(persona.kind, turn.verdict, rng)
    if persona.kind == "lazy" or rng.random() >= config.correction_rate:
        return Action("dislike", honest, reason)
    if persona.kind == "helper":
        text, good = helper_correction(turn, rng, judge)
        return Action("dislike", honest, reason, text, good)
    return Action("dislike", honest, reason, rng.choice(TROLL_CORRECTIONS), False)


def dislike_reason(kind: str, verdict: Verdict, rng: random.Random) -> str:
    if kind == "helper":
        return verdict.reason
    return rng.choice(list(DISLIKE_REASONS))


def helper_correction(turn: Turn, rng: random.Random, judge: GoldJudge) -> tuple[str, bool]:
    """What the bot should have said, and whether the gold judge finds it good: a polite
    refusal after an adversarial turn; else the corpus answer or a topic answer, the first the
    judge finds good; else the first of them (or a written line) anyway, as people do."""
    dialogue = turn.dialogue
    if dialogue.adversarial:
        text = rng.choice(POLITE_REFUSALS).format(topic=rng.choice(TOPICS).name)
        return text, judge.judge(turn.context, text, True).good
    candidates = [dialogue.answer(turn.step)]
    if dialogue.topic is not None:
        candidates.append(_TEXTS.good_reply(rng, dialogue.topic))
    candidates = [c for c in candidates if c] or [WRITTEN_CORRECTION]
    for text in candidates:
        if judge.judge(turn.context, text, False).good:
            return text, True
    return candidates[0], False


def react(
    persona: Persona,
    turn: Turn,
    rng: random.Random,
    config: SimulateLiveConfig,
    judge: GoldJudge,
) -> Action | None:
    """The feedback a user posts on a reply (None: they move on without any)."""
    if rng.random() >= config.feedback_rate:
        return None
    if turn.reply.safety_gated:
        return sensitive_answer(persona.kind, turn.dialogue.adversarial, rng, config)
    return thumbs(persona, turn, rng, config, judge)


# --- one user's session -------------------------------------------------------------------------

Record = Callable[[dict[str, Any]], None]


@dataclass
class Conversation:
    dialogue: Dialogue
    mode: str
    history: list[dict[str, str]] = field(default_factory=list)
    conversation_id: int | None = None
    step: int = 0


class UserSession:
    """One simulated user talking to the server for `config.turns` turns."""

    def __init__(
        self,
        persona: Persona,
        config: SimulateLiveConfig,
        pools: PromptPools,
        judge: GoldJudge,
        client: LiveClient,
        redteam_available: bool,
        record: Record,
    ):
        self.persona, self.config, self.pools, self.judge = persona, config, pools, judge
        self.client, self.record = client, record
        self.redteam = persona.redteam and redteam_available
        self.rng = random.Random(f"{config.seed}/user/{persona.index}")
        self.pseudonym = ""
        self.conversation: Conversation | None = None

    def run(self) -> None:
        self.pseudonym = self.client.consent(self.config.consent_training)["pseudonym"]
        for number in range(self.config.turns):
            self.take_turn(number)

    def take_turn(self, number: int) -> None:
        conversation = self.conversation or self._start_conversation()
        self.conversation = conversation
        text = self._next_human_turn(conversation)
        conversation.history.append({"role": "user", "content": text})
        reply = self.client.chat(
            conversation.history,
            conversation.conversation_id,
            conversation.mode,
            self.config.max_tokens,
            self.config.temperature,
            self.rng.randrange(2**31),
        )
        conversation.conversation_id = reply.conversation_id
        context = list(conversation.history)
        conversation.history.append({"role": "assistant", "content": reply.text})
        verdict = self.judge.judge(context, reply.text, conversation.dialogue.adversarial)
        turn = Turn(conversation.dialogue, conversation.step, context, reply, verdict)
        action = self._post_feedback(turn)
        label = self._post_label(turn) if conversation.mode == "redteam" else None
        self.record(self._record(number, turn, conversation.mode, action, label))
        self._advance(conversation)

    def _start_conversation(self) -> Conversation:
        kind = dialogue_kind(self.persona, self.rng, self.config)
        dialogue = self.pools.pick(self.rng, kind)
        return Conversation(dialogue, "redteam" if self.redteam else "chat")

    def _next_human_turn(self, conversation: Conversation) -> str:
        script = conversation.dialogue.turns
        if conversation.step < len(script):
            return script[conversation.step]
        return follow_up(self.rng, conversation.dialogue)

    def _advance(self, conversation: Conversation) -> None:
        """Next scripted turn; once the script has run out, a follow-up or a new conversation."""
        conversation.step += 1
        ran_out = conversation.step >= len(conversation.dialogue.turns)
        if ran_out and self.rng.random() >= self.config.follow_up_rate:
            self.conversation = None

    def _post_feedback(self, turn: Turn) -> Action | None:
        action = react(self.persona, turn, self.rng, self.config, self.judge)
        if action is not None:
            self.client.feedback(turn.reply.message_id, action.kind, action.reason, action.text)
        return action

    def _post_label(self, turn: Turn) -> dict[str, Any]:
        label, honest = safety_label(self.persona.kind, turn.verdict, self.rng, self.config)
        self.client.safety_label(turn.reply.message_id, label)
        return {"label": label, "honest": honest}

    def _record(
        self,
        number: int,
        turn: Turn,
        mode: str,
        action: Action | None,
        label: dict[str, Any] | None,
    ) -> dict[str, Any]:
        reply = turn.reply
        return {
            "user": self.persona.index,
            "pseudonym": self.pseudonym,
            "user_type": self.persona.kind,
            "redteam": self.redteam,
            "turn": number,
            "conversation_id": reply.conversation_id,
            "message_id": reply.message_id,
            "model_version": reply.model,
            "mode": mode,
            "prompt_kind": turn.dialogue.kind,
            "prompt_source": turn.dialogue.source,
            "user_text": turn.context[-1]["content"],
            "reply": reply.text,
            "finish_reason": reply.finish_reason,
            "safety_gated": reply.safety_gated,
            "gold": turn.verdict.as_record(),
            "feedback": action.as_record() if action else None,
            "safety_label": label,
        }
