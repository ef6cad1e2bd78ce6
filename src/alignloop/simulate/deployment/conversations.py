"""Chat and red-team conversations: the human's messages (harmless, inappropriate, with personal
data), the bot's replies with the gate's classifier labels, what the user does with each reply,
and regenerations: a second bot message at the same position, a `regenerate` comparison, and the
loser pointing at the winner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignloop.simulate.deployment import rows
from alignloop.simulate.deployment.comparisons import Shown, record, vote
from alignloop.simulate.deployment.feedback import react, safety_label, wants_regeneration
from alignloop.simulate.deployment.model import Reply, SimulatedModel
from alignloop.simulate.deployment.state import Dialogue, Person, Run
from alignloop.simulate.deployment.users import Planned


@dataclass(frozen=True)
class _Prompt:
    """The human message the bot replies to."""

    message_id: int
    text: str
    inappropriate: bool


def converse(run: Run, model: SimulatedModel, person: Person, item: Planned, carry: int) -> int:
    """Write one chat or red-team conversation of `item.budget + carry` messages; return
    what could not be used (1 when the budget is odd and no regeneration took it)."""
    version_id, _ = model.version_at(item.start)
    conversation_id = rows.add_conversation(
        run.writer, person.id, item.mode, version_id, item.start
    )
    topic = run.texts.topic(run.rng)
    dialogue = Dialogue(person, conversation_id, item.mode, version_id, topic, item.start)
    remaining = item.budget + carry
    while remaining >= 2:
        remaining -= _turn(run, model, dialogue, can_regenerate=remaining >= 3)
    return remaining


def _turn(run: Run, model: SimulatedModel, dialogue: Dialogue, can_regenerate: bool) -> int:
    """One human message and the bot's reply (and maybe a regenerated one); the number of
    messages written."""
    inappropriate = _is_inappropriate(run, dialogue)
    category = model.draw_category(inappropriate)
    human_text, draft = _human_text(run, dialogue, inappropriate, category)
    prompt = _human_message(run, dialogue, human_text, inappropriate)
    reply = model.reply(dialogue, inappropriate, category, human_text, draft)
    bot_row = _bot_message(run, dialogue, reply, prompt.message_id)
    react(run, dialogue, bot_row["id"], reply, inappropriate)
    kept, written = reply, 2
    if can_regenerate and wants_regeneration(run, dialogue.person.kind, reply):
        kept = _regenerate(run, model, dialogue, prompt, bot_row, reply)
        written = 3
    dialogue.context.append({"role": "assistant", "content": kept.text})
    dialogue.hashes.push("assistant", kept.text)
    dialogue.previous_bot = kept.text
    dialogue.tick(8, 120, run.rng)
    return written


def _is_inappropriate(run: Run, dialogue: Dialogue) -> bool:
    config = run.config
    if dialogue.mode == "redteam":
        rate = config.inappropriate_redteam
    elif dialogue.person.kind == "helper":
        rate = config.inappropriate_helper
    elif dialogue.person.kind in ("master", "gaslight"):
        rate = config.inappropriate_provoker
    else:
        rate = config.inappropriate_troll
    return run.rng.random() < rate


def _human_text(
    run: Run, dialogue: Dialogue, inappropriate: bool, category: str
) -> tuple[str, str | None]:
    """The human message, and the bot's reply where it comes with it (a dataset pair)."""
    rng, texts = run.rng, run.texts
    pair = texts.pair(rng, inappropriate, category)
    if pair is not None:
        human, draft = pair
    elif inappropriate:
        subtle = dialogue.mode == "redteam" or dialogue.person.kind == "master"
        return texts.inappropriate(rng, subtle), None
    else:
        human, draft = _harmless_text(run, dialogue), None
    if not inappropriate and rng.random() < run.config.pii_share:
        human += texts.personal_data(rng)
    return human, draft


def _harmless_text(run: Run, dialogue: Dialogue) -> str:
    """A question that opens the conversation or changes its topic, else a follow-up."""
    rng, texts = run.rng, run.texts
    if not dialogue.context:
        return texts.question(rng, dialogue.topic)
    if rng.random() < run.config.topic_change:
        dialogue.topic = texts.topic(rng)
        return texts.question(rng, dialogue.topic)
    return texts.follow_up(rng, dialogue.topic)


def _human_message(run: Run, dialogue: Dialogue, text_: str, inappropriate: bool) -> _Prompt:
    row = rows.add_message(run.writer, dialogue, "human", text_, dialogue.clock)
    dialogue.context.append({"role": "user", "content": text_})
    dialogue.hashes.push("user", text_)
    if inappropriate:
        run.truth.inappropriate.add(row["id"])
    return _Prompt(row["id"], text_, inappropriate)


def _bot_message(run: Run, dialogue: Dialogue, reply: Reply, human_id: int) -> dict[str, Any]:
    """The reply's message, the classifier label of a gate decision (on the human message for
    the input check), and the reply's truth."""
    created = dialogue.tick(0.5, 4, run.rng)
    row = rows.add_message(
        run.writer, dialogue, "bot", reply.text, created, reply.generation, reply.gated
    )
    classifier = run.config.gate_classifier
    for stage, score in reply.classifier_labels:
        target = human_id if stage == "input" else row["id"]
        safety_label(run, dialogue, target, "classifier", classifier, "unsafe", score)
    run.truth.bot_quality[row["id"]] = reply.quality
    run.truth.bot_category[row["id"]] = reply.category
    return row


def _regenerate(
    run: Run,
    model: SimulatedModel,
    dialogue: Dialogue,
    prompt: _Prompt,
    old_row: dict[str, Any],
    old: Reply,
) -> Reply:
    """A second reply beside the old one, the `regenerate` comparison (old, new) and the
    user's vote; the loser leaves the main line. Returns the reply kept."""
    provoked = prompt.inappropriate
    category = model.draw_category(provoked)
    new = model.reply(dialogue, provoked, category, prompt.text, None, old.input_score)
    new_row = _bot_message(run, dialogue, new, prompt.message_id)
    react(run, dialogue, new_row["id"], new, provoked)
    pair = [(old_row, old), (new_row, new)]
    qualities = [old.quality, new.quality]
    user_vote = vote(run, dialogue.person.kind, qualities)
    outcome, choice, _ = user_vote
    winner = choice if outcome == "choice" else 1  # tie or both bad: the new one stays
    pair[1 - winner][0]["superseded_by_id"] = pair[winner][0]["id"]
    responses = [
        {"text": reply.text, "message_id": row["id"], "model_version_id": dialogue.version_id}
        for row, reply in pair
    ]
    context = old_row["context"]
    shown = Shown(
        dialogue.conversation_id, "regenerate", context, responses, qualities, dialogue.clock
    )
    record(run, dialogue.person.id, shown, user_vote)
    return pair[winner][1]
