"""Any OpenAI-compatible chat server (vLLM, llama.cpp server, alignloop itself) as a backend."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace

import httpx

from alignloop.backends.base import ChatMessage, Completion, GenerationParams, TextStream
from alignloop.errors import AlignloopError


class BackendError(AlignloopError):
    status = 502
    code = "backend_error"


class OpenAICompatibleBackend:
    def __init__(
        self, base_url: str, model: str, api_key: str = "alignloop", timeout: float = 300.0
    ):
        self.model_name = model
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def _body(self, prompt: list[ChatMessage], params: GenerationParams, stream: bool) -> dict:
        body = {
            "model": self.model_name,
            "messages": list(prompt),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
            "stream": stream,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def generate(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        return [self._generate_one(p, params) for p in prompts]

    def _generate_one(
        self, prompt: list[ChatMessage], params: GenerationParams
    ) -> list[Completion]:
        response = self._post(self._body(prompt, params, stream=False))
        data = response.json()
        usage = data.get("usage") or {}
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        return [
            Completion(
                text=c["message"].get("content") or "",
                finish_reason=c.get("finish_reason") or "stop",
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0) // max(len(choices), 1),
            )
            for c in choices
        ]

    def stream(self, prompt: list[ChatMessage], params: GenerationParams) -> TextStream:
        body = self._body(prompt, replace(params, n=1), stream=True)
        result = TextStream(iter(()))
        result.deltas = self._sse_deltas(body, result)
        return result

    def _sse_deltas(self, body: dict, result: TextStream) -> Iterator[str]:
        with self._client.stream("POST", "/chat/completions", json=body) as response:
            self._raise_for_status(response, read=True)
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                for choice in chunk.get("choices", []):
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                    if text := (choice.get("delta") or {}).get("content"):
                        result.completion_tokens += 1
                        yield text

    def _post(self, body: dict) -> httpx.Response:
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach {self._client.base_url}: {exc}") from exc
        self._raise_for_status(response)
        return response

    def _raise_for_status(self, response: httpx.Response, read: bool = False) -> None:
        if response.status_code < 400:
            return
        if read:
            response.read()
        raise BackendError(
            f"{self._client.base_url} answered {response.status_code}: {response.text[:500]}"
        )

    def close(self) -> None:
        self._client.close()
