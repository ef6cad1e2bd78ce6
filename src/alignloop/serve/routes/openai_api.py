"""OpenAI-compatible chat completions (streaming as server-sent events); every turn is logged.

The `id` of a completion is the id of the logged bot message: pass it to POST /api/feedback.
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from alignloop.serve.auth import current_user
from alignloop.serve.chat import ChatService, generation_params
from alignloop.serve.schemas import ChatCompletionRequest
from alignloop.store.repository import UserRef

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models")
async def list_models(request: Request):
    services = request.app.state.services
    name = services.settings.model_version or (services.backend and services.backend.model_name)
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "alignloop"}]}


@router.post("/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, user: UserRef = Depends(current_user)
):
    started = time.perf_counter()
    services = request.app.state.services
    params = generation_params(
        services.settings,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop,
        seed=body.seed,
    )
    context = [{"role": m.role, "content": m.content} for m in body.messages]
    chat = ChatService(services)
    model = services.require_backend().model_name
    if body.stream:
        logged, deltas = await chat.stream(
            user.id, context, params, body.conversation_id, body.mode
        )
        return StreamingResponse(
            _sse(str(logged.bot_message_id), model, deltas, logged.conversation_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await chat.complete(user.id, context, params, body.conversation_id, body.mode)
    total_ms = (time.perf_counter() - started) * 1000
    return JSONResponse(
        {
            "id": str(result.logged.bot_message_id),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.reply},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
            "alignloop": {
                "conversation_id": result.logged.conversation_id,
                "human_message_id": result.logged.human_message_id,
                "safety_gated": result.safety_gated,
            },
        },
        headers={"Server-Timing": f"gen;dur={result.generation_ms:.3f}, total;dur={total_ms:.3f}"},
    )


async def _sse(message_id: str, model: str, deltas, conversation_id: int):
    created = int(time.time())

    def chunk(delta: dict, finish: str | None) -> str:
        body = {
            "id": message_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "alignloop": {"conversation_id": conversation_id},
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    async for text, finish in deltas:
        if finish is not None:
            yield chunk({}, finish)
        elif text:
            yield chunk({"content": text}, None)
    yield "data: [DONE]\n\n"
