"""Request and response bodies of the HTTP API (validation only; no domain logic here)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

Text = Annotated[str, StringConstraints(max_length=20_000)]


def _message_id(value: object) -> object:
    """Accept the chat completion's `id` as given (a string of digits) or as a number."""
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError("message_id is the id of a chat completion (a number)")
        return int(value)
    return value


MessageId = Annotated[int, BeforeValidator(_message_id)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send name, tool fields...

    role: Literal["system", "user", "assistant", "developer"]
    content: Text

    @field_validator("role")
    @classmethod
    def _developer_is_system(cls, role: str) -> str:
        return "system" if role == "developer" else role


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions body; unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=200)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="one reply per turn; use /api/compare for K")
    stop: str | list[str] | None = None
    seed: int | None = None
    conversation_id: int | None = Field(None, description="alignloop: continue this conversation")
    mode: Literal["chat", "redteam"] = Field(
        "chat",
        description="alignloop: the mode of a new conversation; 'redteam' asks for a safe / "
        "unsafe label on every bot reply before the next turn",
    )

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> list[str]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings of at most 64 characters")
        return stops

    @field_validator("messages")
    @classmethod
    def _last_is_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role != "user":
            raise ValueError("the last message must have role 'user' (the turn to answer)")
        return messages


class FeedbackRequest(Strict):
    message_id: MessageId
    kind: Literal["like", "dislike", "sensitive_agree", "sensitive_disagree"]
    reason: str | None = Field(None, max_length=64)
    text: str | None = Field(None, max_length=5_000)


class FeedbackResponse(BaseModel):
    feedback_id: int
    message_id: int
    kind: str
    reason: str | None


class CompareRequest(Strict):
    messages: list[ChatMessageIn] | None = Field(None, min_length=1, max_length=200)
    prompt: Text | None = None
    k: int = Field(2, ge=2)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None


class RegenerateRequest(Strict):
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None


class VoteRequest(Strict):
    outcome: Literal["choice", "tie", "both_bad", "ranking"] | None = None
    choice: int | None = None
    ranking: list[int] | None = Field(None, max_length=8)


class ConsentRequest(Strict):
    training: bool | None = None
    publication: bool | None = None


class AdminLogin(Strict):
    token: str = Field(max_length=512)


class SafetyLabelRequest(Strict):
    message_id: MessageId
    label: Literal["safe", "unsafe"]
