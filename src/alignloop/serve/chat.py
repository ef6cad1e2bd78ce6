"""One chat turn: gate the input, generate, gate the output, log it all with its context.

Routes call `ChatService`; it knows nothing of HTTP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from alignloop.backends.base import ChatMessage, GenerationParams
from alignloop.config import ServeConfig
from alignloop.errors import InvalidInput
from alignloop.safety.gate import GateCheck
from alignloop.serve.state import Services
from alignloop.store.models import Message
from alignloop.store.repository import (
    LoggedTurn,
    Regeneration,
    Turn,
    add_safety_label,
    check_can_continue,
    log_regeneration,
    log_turn,
    regenerable_message,
    tail_hash,
)


def generation_params(settings: ServeConfig, **asked: Any) -> GenerationParams:
    """The client's settings where given, the server's defaults elsewhere, within the limits."""
    max_new = asked.get("max_tokens") or settings.max_new_tokens
    if max_new > settings.max_tokens_limit:
        raise InvalidInput(
            f"max_tokens is {max_new}; this server allows at most {settings.max_tokens_limit}",
            "max_tokens",
        )
    return GenerationParams(
        max_new_tokens=max_new,
        temperature=settings.temperature
        if asked.get("temperature") is None
        else asked["temperature"],
        top_p=asked.get("top_p") or settings.top_p,
        n=asked.get("n") or 1,
        stop=tuple(asked.get("stop") or ()),
        seed=asked.get("seed"),
    )


def sampling_params(settings: ServeConfig, body: Any, n: int = 1) -> GenerationParams:
    """Settings for drawing alternative replies (compare, regenerate): sampled, never greedy,
    so two draws can differ; the body's max_tokens, temperature, top_p and seed where given."""
    return generation_params(
        settings,
        max_tokens=body.max_tokens,
        temperature=body.temperature or max(settings.temperature, 0.7),
        top_p=body.top_p,
        seed=body.seed,
        n=n,
    )


@dataclass
class TurnResult:
    logged: LoggedTurn
    reply: str
    finish_reason: str
    safety_gated: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_ms: float = 0.0


@dataclass
class _Pending:
    """A turn under way: what was asked, what the gate said, what came out."""

    user_id: int
    context: list[ChatMessage]
    params: GenerationParams
    conversation_id: int | None
    mode: str = "chat"
    version_id: int | None = None  # the model version that answers (fixed at the turn's start)
    checks: list[GateCheck] = field(default_factory=list)

    def gated(self) -> bool:
        return any(c.fired for c in self.checks)


class ChatService:
    def __init__(self, services: Services):
        self.s = services

    async def complete(
        self,
        user_id: int,
        context: list[ChatMessage],
        params: GenerationParams,
        conv: int | None,
        mode: str = "chat",
    ) -> TurnResult:
        backend, version_id = self.s.deployment()
        turn = _Pending(user_id, context, params, conv, mode, version_id)
        await self._check_conversation(turn)
        reply, finish, usage, generation_ms = await self._reply(backend, turn)
        logged = await self._log(turn, reply, finish)
        return TurnResult(logged, reply, finish, turn.gated(), *usage, generation_ms)

    async def regenerate(
        self, user_id: int, message_id: int, params: GenerationParams
    ) -> tuple[Regeneration, TurnResult]:
        """A new reply to the context of the user's latest bot message, logged beside it with
        the comparison (old, new) the user votes on."""
        backend, version_id = self.s.deployment()
        context, conversation_id = await run_in_threadpool(
            self._read_regenerable, user_id, message_id
        )
        turn = _Pending(user_id, context, params, conversation_id, version_id=version_id)
        reply, finish, usage, generation_ms = await self._reply(backend, turn)
        generation, gated = self._generation_record(turn, finish), turn.gated()

        def write(session) -> tuple[Regeneration, LoggedTurn]:
            regen = log_regeneration(
                session, user_id, message_id, reply, generation, gated, turn.version_id
            )
            logged = LoggedTurn(regen.conversation_id, regen.human_message_id, regen.new_message_id)
            self._label_gate_decisions(session, turn, logged)
            return regen, logged

        regen, logged = await self.s.writer.run(write)
        return regen, TurnResult(logged, reply, finish, gated, *usage, generation_ms)

    def _read_regenerable(self, user_id: int, message_id: int) -> tuple[list[ChatMessage], int]:
        with Session(self.s.engine) as session:
            message = regenerable_message(session, user_id, message_id)
            return list(message.context or []), message.conversation_id

    async def _reply(self, backend, turn: _Pending) -> tuple[str, str, tuple[int, int], float]:
        """(reply, finish_reason, (prompt, completion) tokens, generation ms), gated both ways."""
        if self._input_fires(turn):
            return self.s.gate.canned_reply(turn.context), "content_filter", (0, 0), 0.0
        started = time.perf_counter()
        completion = (await run_in_threadpool(backend.generate, [turn.context], turn.params))[0][0]
        generation_ms = (time.perf_counter() - started) * 1000
        reply, finish = completion.text, completion.finish_reason
        usage = (completion.prompt_tokens, completion.completion_tokens)
        if self._output_fires(turn, reply):
            reply, finish = self.s.gate.canned_reply(turn.context), "content_filter"
        return reply, finish, usage, generation_ms

    async def stream(
        self,
        user_id: int,
        context: list[ChatMessage],
        params: GenerationParams,
        conv: int | None,
        mode: str = "chat",
    ) -> tuple[LoggedTurn, AsyncIterator[tuple[str, str | None]]]:
        """Open the turn in the store (so its id is known), then yield (delta, finish_reason).

        The output gate sees the reply so far before each delta is sent: once it fires, no
        more model text goes out and the canned reply follows (finish_reason content_filter).
        """
        backend, version_id = self.s.deployment()
        turn = _Pending(user_id, context, params, conv, mode, version_id)
        await self._check_conversation(turn)
        logged = await self._log(turn, "", None)
        return logged, self._stream_deltas(backend, turn, logged)

    async def _stream_deltas(self, backend, turn: _Pending, logged: LoggedTurn):
        shown, finish = "", "stop"
        try:
            if self._input_fires(turn):
                shown, finish = self.s.gate.canned_reply(turn.context), "content_filter"
                yield shown, None
            else:
                stream = await run_in_threadpool(backend.stream, turn.context, turn.params)
                try:
                    async for delta in iterate_in_threadpool(iter(stream)):
                        if self._output_fires(turn, shown + delta):
                            canned = self.s.gate.canned_reply(turn.context)
                            canned = ("\n\n" if shown else "") + canned
                            shown, finish = shown + canned, "content_filter"
                            yield canned, None
                            break
                        shown += delta
                        yield delta, None
                    else:
                        finish = stream.finish_reason or "stop"
                finally:
                    stream.cancel()
            yield "", finish
        except BaseException:
            finish = "cancelled"  # the reader went away: keep what it was shown
            raise
        finally:
            await self._finish(turn, logged, shown, finish)

    def _input_fires(self, turn: _Pending) -> bool:
        if self.s.gate is None:
            return False
        turn.checks.append(self.s.gate.check_input(turn.context))
        return turn.checks[-1].fired

    def _output_fires(self, turn: _Pending, reply: str) -> bool:
        if self.s.gate is None:
            return False
        check = self.s.gate.check_output(turn.context, reply)
        # Streaming checks the reply at every delta: keep only the latest output score.
        turn.checks = [c for c in turn.checks if c.stage != "output"] + [check]
        return check.fired

    async def _check_conversation(self, turn: _Pending) -> None:
        if turn.conversation_id is not None:
            await run_in_threadpool(self._read_owned, turn.user_id, turn.conversation_id)

    def _read_owned(self, user_id: int, conversation_id: int) -> None:
        with Session(self.s.engine) as session:
            check_can_continue(session, user_id, conversation_id)

    def _generation_record(self, turn: _Pending, finish: str | None) -> dict[str, Any]:
        record: dict[str, Any] = {**turn.params.as_dict(), "finish_reason": finish}
        if self.s.gate is not None:
            record["safety_gate"] = self.s.gate.describe()
            for check in turn.checks:
                record["safety_gate"] |= check.as_record()
        return record

    async def _log(self, turn: _Pending, reply: str, finish: str | None) -> LoggedTurn:
        record = Turn(
            user_id=turn.user_id,
            context=turn.context,
            reply=reply,
            model_version_id=turn.version_id,
            generation=self._generation_record(turn, finish),
            safety_gated=turn.gated(),
            conversation_id=turn.conversation_id,
            mode=turn.mode,
        )

        def write(session) -> LoggedTurn:
            logged = log_turn(session, record)
            if finish is not None:
                self._label_gate_decisions(session, turn, logged)
            return logged

        return await self.s.writer.run(write)

    async def _finish(self, turn: _Pending, logged: LoggedTurn, reply: str, finish: str) -> None:
        generation = self._generation_record(turn, finish)
        digest = tail_hash([*turn.context, {"role": "assistant", "content": reply}])

        def write(session) -> None:
            message = session.get(Message, logged.bot_message_id)
            message.text, message.generation, message.tail_hash = reply, generation, digest
            message.safety_gated = turn.gated()
            self._label_gate_decisions(session, turn, logged)

        await self.s.writer.run(write)

    def _label_gate_decisions(self, session, turn: _Pending, logged: LoggedTurn) -> None:
        """Every time the safety classifier fires, a classifier safety label on the message it
        judged (a sensitive-topic decision alone is logged in the generation record only)."""
        for check in turn.checks:
            if check.score >= self.s.gate.threshold:
                target = (
                    logged.human_message_id if check.stage == "input" else logged.bot_message_id
                )
                if target is None:
                    continue
                add_safety_label(
                    session, target, "unsafe", "classifier", self.s.gate.name, check.score
                )
