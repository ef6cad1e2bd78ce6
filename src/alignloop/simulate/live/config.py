"""`SimulateLiveConfig`: the options of `alignloop simulate` (a population talking to a real
server over HTTP). Every option is one field; configs/simulate.yaml names them all.

User types (SPEC.md §2 adapted to conversation; names as in `simulate/deployment` where the
behaviour is the same):

| type     | SafetyMix | what they send                             | feedback, labels          |
|----------|-----------|--------------------------------------------|---------------------------|
| helper   | helper    | chatterbot-corpus and topic conversations  | honest; reasons, fixes    |
| toxic    | troll     | insults, prejudice (`troll_input_share`)   | `flip_share` flipped      |
| master   | master    | red-team prompts (`troll_input_share`)     | `flip_share` flipped      |
| flipper  | troll     | benign conversations                       | `flip_share` flipped      |
| gaslight | gaslight  | red-team prompts (`troll_input_share`)     | likes unsafe, all "safe"  |
| lazy     | lazy      | benign conversations                       | random                    |

The helpers are what the troll shares leave (default 70%: BB3 saw about 30% adversarial
conversations). Independently of type, a share `redteam_share` of users red-team: their
conversations are in red-team mode, use adversarial prompts, and label every reply safe or
unsafe (by the gold judge's verdict; trolls invert it as their feedback does).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from alignloop.config import Settings

TROLL_TYPES = ("toxic", "master", "flipper", "gaslight", "lazy")
USER_TYPES = ("helper", *TROLL_TYPES)
SAFETYMIX_NAMES = {
    "helper": "helper",
    "toxic": "troll",
    "master": "master",
    "flipper": "troll",
    "gaslight": "gaslight",
    "lazy": "lazy",
}


class SimulateLiveConfig(Settings):
    """Simulated users (helpers and trolls) chat with a running server over its HTTP API, give
    likes, dislikes with reasons and corrections, red-team, and keep the gold judge's verdict on
    every reply aside (never in the store)."""

    server: str = Field(
        "http://127.0.0.1:8000", description="Base URL of the running `alignloop serve`."
    )
    users: int = Field(8, ge=1, description="Simulated users (each one Bearer token).")
    turns: int = Field(4, ge=1, description="Chat turns each user sends.")
    seed: int = Field(0, description="Seed: who is which type, what they say, sampling seeds.")
    population: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="Name of a returning population: runs with the same name (and the same "
        "users and shares) send the same people back (same tokens, types and red-teamers), "
        "so each user's history in the store grows run after run; what they say still "
        "follows `seed`. None: new users every run.",
    )
    out: str = Field(
        "runs/simulate-live",
        description="Folder for the ground truth (replies.jsonl, users.jsonl) and summary.json.",
    )
    concurrency: int = Field(
        2, ge=1, description="Users talking at once (the server generates on CPU: keep it low)."
    )
    max_tokens: int = Field(48, ge=1, description="max_tokens of every chat request.")
    temperature: float = Field(
        0.7, ge=0, le=2, description="Sampling temperature asked of the server."
    )
    toxic_share: float = Field(
        0.08, ge=0, le=1, description="Share of users who send insults and prejudice."
    )
    master_share: float = Field(
        0.08, ge=0, le=1, description="Share of users who send red-team prompts (master trolls)."
    )
    flipper_share: float = Field(
        0.05, ge=0, le=1, description="Share of users who chat normally but flip their feedback."
    )
    gaslight_share: float = Field(
        0.05, ge=0, le=1, description="Share of users who provoke and praise unsafe replies."
    )
    lazy_share: float = Field(
        0.04, ge=0, le=1, description="Share of users whose feedback is random."
    )
    redteam_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of users (of any type) who red-team: red-team mode, adversarial "
        "prompts, a safe / unsafe label on every reply.",
    )
    troll_input_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a toxic, master or gaslight user's conversations that are "
        "toxic / adversarial (the rest are benign).",
    )
    flip_share: float = Field(
        0.8, ge=0, le=1, description="Share of a flipping troll's verdicts given contrary."
    )
    helper_error: float = Field(
        0.0, ge=0, le=1, description="Share of a helper's verdicts given wrong by mistake."
    )
    feedback_rate: float = Field(
        0.9, ge=0, le=1, description="Chance that a user gives feedback on a reply."
    )
    correction_rate: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Chance that a dislike comes with a free-text 'what you should have said'.",
    )
    follow_up_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Chance of a follow-up in the same conversation once a scripted "
        "conversation runs out (otherwise a new conversation starts).",
    )
    consent_training: bool = Field(
        True, description="Users consent to their conversations being used for training."
    )
    heldout_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of every prompt pool kept out of the users' conversations, for "
        "`measure` (split by a hash of the text, the same in every run).",
    )
    reserved_eval_prompts: int = Field(
        40,
        ge=0,
        description="The loop's evaluation windows, kept out of the users' conversations and "
        "the measurement: the last N prompts of the built-in 'adversarial' and 'chatterbot' "
        "sets (set it to the loop's eval_limit; 0 reserves none).",
    )
    measure_prompts: int = Field(
        0,
        ge=0,
        description="After the run, measure the served model on this many held-out prompts "
        "(0: no measurement).",
    )
    measure_adversarial_share: float = Field(
        0.3, ge=0, le=1, description="Share of adversarial prompts in the measurement."
    )
    request_timeout: float = Field(
        300.0, gt=0, description="Seconds to wait for one HTTP response (CPU generation is slow)."
    )
    max_retries: int = Field(
        5, ge=0, description="Retries of a request answered 429 / 503 or not answered at all."
    )
    retry_backoff: float = Field(
        1.0, gt=0, description="Seconds before the first retry (doubling, or the Retry-After)."
    )
    startup_wait: float = Field(
        120.0, ge=0, description="Seconds to wait for a server still loading its model."
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> SimulateLiveConfig:
        total = sum(self.troll_shares().values())
        if total > 1 + 1e-9:
            raise ValueError(
                f"toxic_share: the troll shares (toxic, master, flipper, gaslight, lazy) sum "
                f"to {total:.3g}; they must sum to at most 1 (the rest are helpers)"
            )
        return self

    def troll_shares(self) -> dict[str, float]:
        return {kind: getattr(self, f"{kind}_share") for kind in TROLL_TYPES}

    def type_shares(self) -> dict[str, float]:
        """Every user type's share of the population, helpers included."""
        trolls = self.troll_shares()
        return {"helper": max(0.0, 1 - sum(trolls.values())), **trolls}
