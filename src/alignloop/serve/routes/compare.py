"""Side by side: K anonymous responses to one context, then a choice, tie, both bad or ranking."""

from __future__ import annotations

import random

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from alignloop.errors import InvalidInput
from alignloop.serve.auth import current_user
from alignloop.serve.chat import sampling_params
from alignloop.serve.schemas import CompareRequest, VoteRequest
from alignloop.store.repository import UserRef, create_comparison, record_vote

router = APIRouter(prefix="/api/compare", tags=["compare"])


def _context(body: CompareRequest) -> list[dict[str, str]]:
    if (body.messages is None) == (body.prompt is None):
        raise InvalidInput("give exactly one of 'prompt' or 'messages'", "prompt")
    if body.prompt is not None:
        if not body.prompt.strip():
            raise InvalidInput("prompt is empty", "prompt")
        return [{"role": "user", "content": body.prompt}]
    if body.messages[-1].role != "user":
        raise InvalidInput("the last message must have role 'user'", "messages")
    return [{"role": m.role, "content": m.content} for m in body.messages]


@router.post("", status_code=201)
async def create(body: CompareRequest, request: Request, user: UserRef = Depends(current_user)):
    services = request.app.state.services
    if body.k > services.settings.max_compare_k:
        raise InvalidInput(f"k is at most {services.settings.max_compare_k} here", "k")
    context = _context(body)
    backend, version_id = services.deployment()
    params = sampling_params(services.settings, body, n=body.k)
    completions = (await run_in_threadpool(backend.generate, [context], params))[0]
    responses = [
        {"text": c.text, "model": backend.model_name, "model_version_id": version_id}
        for c in completions
    ]
    random.shuffle(responses)  # which sample (or, later, which model) is where stays hidden
    comparison_id = await services.writer.run(
        lambda s: create_comparison(s, user.id, context, responses, version_id)
    )
    return {
        "comparison_id": comparison_id,
        "responses": [{"index": i, "text": r["text"]} for i, r in enumerate(responses)],
    }


@router.post("/{comparison_id}/vote")
async def vote(
    comparison_id: int, body: VoteRequest, request: Request, user: UserRef = Depends(current_user)
):
    outcome = body.outcome or (
        "choice" if body.choice is not None else "ranking" if body.ranking is not None else None
    )
    if outcome is None:
        raise InvalidInput("give 'choice', 'ranking', or outcome 'tie' / 'both_bad'", "outcome")
    comparison = await request.app.state.services.writer.run(
        lambda s: record_vote(s, user.id, comparison_id, outcome, body.choice, body.ranking)
    )
    return {
        "comparison_id": comparison.id,
        "source": comparison.source,
        "outcome": comparison.outcome,
        "choice": comparison.choice,
        "ranking": comparison.ranking,
        "responses": [_revealed(i, r) for i, r in enumerate(comparison.responses)],
    }


def _revealed(index: int, response: dict) -> dict:
    """A response as shown once the vote is in: which model (and message) it was."""
    shown = {"index": index, "text": response["text"], "model": response.get("model")}
    if "message_id" in response:
        shown["message_id"] = response["message_id"]
    return shown
