"""The HTTP side of a simulated user: the server's public API, with polite retries.

A user is its Bearer token (any token names a pseudonymous user, created on first use). Requests
answered 429 (rate limited) or 503 (model still loading) are retried after the server's
Retry-After, else after a doubling back-off; so are requests that never reached the server
(connection refused). A request that timed out is not retried: the server may have logged it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from alignloop.errors import AlignloopError, ConfigError

RETRY_STATUSES = (429, 503)
SAFETY_LABELS_PATH = "/api/safety-labels"


class ApiError(AlignloopError):
    """The server refused a request; `status` is its HTTP status."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(f"server answered {status}: {message}", field)
        self.status = status


@dataclass(frozen=True)
class ChatReply:
    message_id: int
    conversation_id: int
    text: str
    finish_reason: str
    safety_gated: bool
    model: str


@dataclass(frozen=True)
class Retry:
    attempts: int
    backoff: float


class LiveClient:
    """One simulated user's connection to the server."""

    def __init__(self, server: str, token: str, timeout: float, retry: Retry):
        self.retry = retry
        self.http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        """The decoded JSON answer; retries on 429 / 503 / refused connections."""
        for attempt in range(self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self.http.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise ApiError(0, f"no connection to the server ({exc})") from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if response.is_error:
                raise _api_error(response)
            return response.json()
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            return float(retry_after)
        return self.retry.backoff * 2**attempt

    def consent(self, training: bool, publication: bool = False) -> dict:
        body = {"training": training, "publication": publication}
        return self.request("PUT", "/api/me/consent", body)

    def chat(
        self,
        messages: list[dict[str, str]],
        conversation_id: int | None,
        mode: str,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> ChatReply:
        body: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "mode": mode,
        }
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        answer = self.request("POST", "/v1/chat/completions", body)
        extra = answer.get("alignloop", {})
        return ChatReply(
            message_id=int(answer["id"]),
            conversation_id=int(extra["conversation_id"]),
            text=answer["choices"][0]["message"]["content"],
            finish_reason=answer["choices"][0].get("finish_reason") or "",
            safety_gated=bool(extra.get("safety_gated")),
            model=answer.get("model") or "",
        )

    def feedback(
        self, message_id: int, kind: str, reason: str | None = None, text: str | None = None
    ) -> dict:
        body = {"message_id": message_id, "kind": kind, "reason": reason, "text": text}
        return self.request("POST", "/api/feedback", {k: v for k, v in body.items() if v})

    def safety_label(self, message_id: int, label: str) -> dict:
        return self.request("POST", SAFETY_LABELS_PATH, {"message_id": message_id, "label": label})


def _api_error(response: httpx.Response) -> ApiError:
    try:
        error = response.json().get("error", {})
        return ApiError(
            response.status_code, error.get("message", response.text), error.get("param")
        )
    except ValueError:
        return ApiError(response.status_code, response.text[:200])


@dataclass(frozen=True)
class ServerInfo:
    model: str
    redteam: bool  # the server takes red-team safety labels


def check_server(server: str, wait: float, timeout: float = 5.0) -> ServerInfo:
    """The server's model and abilities, once it is healthy; ConfigError naming `server` if
    nothing answers there or it stays unhealthy for `wait` seconds."""
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(
            f"server must be an http(s) URL such as http://127.0.0.1:8000; got {server!r}",
            "server",
        )
    deadline = time.monotonic() + wait
    while True:
        health = _health(base, timeout)
        if health.get("status") == "ok":
            return ServerInfo(health.get("model", ""), _has_redteam(base, timeout))
        if health.get("status") == "error" or time.monotonic() >= deadline:
            raise ConfigError(
                f"the server at {server} is not ready ({health}); check its log, or wait "
                "longer with --startup-wait",
                "server",
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _health(base: str, timeout: float) -> dict:
    try:
        response = httpx.get(base + "/healthz", timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"no server answers at {base} ({type(exc).__name__}); start one with "
            "`alignloop serve` or pass its URL with --server",
            "server",
        ) from exc
    try:
        return response.json()
    except ValueError as exc:
        raise ConfigError(
            f"{base}/healthz did not answer JSON: is {base} an alignloop server? Pass its URL "
            "with --server",
            "server",
        ) from exc


def _has_redteam(base: str, timeout: float) -> bool:
    try:
        paths = httpx.get(base + "/openapi.json", timeout=timeout).json().get("paths", {})
    except (httpx.HTTPError, ValueError):
        return False
    return SAFETY_LABELS_PATH in paths
