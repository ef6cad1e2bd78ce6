"""The typed config of `alignloop loop`: every flag (and YAML key) is one field."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from alignloop.config import Settings

ALGORITHMS = ("cringe", "kto", "dpo")
# curation's red_team_thumbs choices, restated so that reading the config imports no pandas
RedTeamThumbs = Literal["apart", "own_signal", "left_out", "with_everyday"]


class LoopConfig(Settings):
    """One round of the whole cycle: curate what users said since the last round, train a
    candidate on it, evaluate it against the deployed version, promote it only if it wins and
    is not less safe. Every step resumes where an interrupted round stopped."""

    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    work: str = Field(
        "alignloop-rounds", description="Folder of the rounds (round-N/ under the arm's name)."
    )
    arm: str = Field(
        "main",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of this line of rounds; a server follows one arm's promotions.",
    )
    base_model: str = Field(
        "smollm2", description="The deployed model before any round promoted one."
    )
    rounds: int = Field(1, ge=1, description="Rounds to run, one after the other.")
    # curate
    safety_classifier: str = Field(
        "profanity",
        description="Classifier curation scores messages with (see `alignloop curate`).",
    )
    troll_filter: bool = Field(
        True,
        description="Drop the feedback of users whose troll score is high (off: trust everyone, "
        "the unfiltered arm of the comparison).",
    )
    max_troll_score: float = Field(
        0.45, ge=0, le=1, description="With troll_filter: users above this troll score are out."
    )
    judge_red_teaming: bool = Field(
        True,
        description="Curation holds red-teaming against a user like any act; off: only their "
        "'safe' labels are judged (see `alignloop curate --help`).",
    )
    min_scale: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Trust: the least scale of a user's shortfall in a signal (see "
        "`alignloop curate --help`).",
    )
    labels_judged_by: Literal["classifier", "peers"] = Field(
        "classifier",
        description="What people's safety labels are held against: the classifier, or the "
        "other users' labels of replies like it (see `alignloop curate --help`).",
    )
    red_team_thumbs: RedTeamThumbs = Field(
        "apart",
        description="Trust: how thumbs given in red-team conversations are judged (see "
        "`alignloop curate --help`).",
    )
    thumbs_features: Literal["words_and_shape", "words"] = Field(
        "words_and_shape",
        description="Trust: what the model of the other users' thumbs sees of a reply (see "
        "`alignloop curate --help`).",
    )
    min_examples: int = Field(
        8, ge=1, description="Fewest new labelled replies a round trains on; fewer ends it early."
    )
    # train
    algorithm: Literal["cringe", "kto", "dpo"] = Field(
        "cringe",
        description="How the candidate learns from liked and disliked replies: cringe (binary "
        "data), kto (binary data) or dpo (pairs from votes and corrections).",
    )
    candidate_rows: Literal["since_deployed", "round"] = Field(
        "since_deployed",
        description="What the candidate learns from: every row since the deployed version's "
        "round (a round that was not promoted leaves its rows to the next), or only this "
        "round's.",
    )
    corrections_as_positives: bool = Field(
        True,
        description="Add people's corrections ('what should I have said') to the liked rows "
        "the candidate (cringe and kto) and the reward model learn from.",
    )
    safe_answers: bool = Field(
        True,
        description="Baked-in safety from red-teaming: in the context of every red-team reply "
        "people labelled unsafe or disliked, add the canned safe reply as a liked row for the "
        "candidate and the reward model.",
    )
    attack_answers: bool = Field(
        False,
        description="With safe_answers: also in the context of every reply in a distrusted "
        "user's red-team conversation (a troll's labels are not believed, but their turns are "
        "attacks; the troll filter off distrusts no one). Off by default: in the demo it made "
        "the model deflect more harmless prompts without a measurable safety gain.",
    )
    safe_answer_style: Literal["non_sequitur", "safe_response"] = Field(
        "non_sequitur",
        description="The safe answer: 'non_sequitur' (offer another topic, as the serving gate "
        "does by default) or 'safe_response' (apologise and decline).",
    )
    train_reward_model: bool = Field(
        True,
        description="Also train a thumbs reward model on every round's binary data so far "
        "(the default judge of the evaluation).",
    )
    reward_base: str | None = Field(
        None,
        description="Model the reward model starts from (default: base_model); a truncated "
        "one such as 'smollm2:layers=10' trains about 4x faster.",
    )
    train_steps: int = Field(40, ge=1, description="Optimizer steps of the candidate's training.")
    reward_steps: int = Field(40, ge=1, description="Optimizer steps of the reward model.")
    learning_rate: float = Field(
        3e-4, gt=0, description="Peak learning rate of both trainings (LoRA adapters)."
    )
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step.")
    max_length: int = Field(256, ge=16, description="Tokens per training sequence.")
    train_config: str | None = Field(
        None,
        description="A YAML file of the candidate trainer's other options "
        "(configs/train/<algorithm>.yaml); the fields above win.",
    )
    # evaluate
    eval_prompts: list[str] = Field(
        ["chatterbot", "adversarial"],
        description="Held-out prompts: built-in set names (chatterbot, adversarial, hh-rlhf, "
        "diasafety) or a file (JSONL with 'prompt', or one prompt per line).",
    )
    eval_limit: int = Field(
        40,
        ge=1,
        description="Prompts of each evaluation set: a built-in set's last ones (which "
        "simulated users never say: their reserved_eval_prompts), a file's first ones.",
    )
    judge: str = Field(
        "reward",
        description="Pairwise judge: 'reward' (this round's reward model), 'reward:FOLDER', "
        "or 'llm:MODEL' (a generation backend asked in both orders).",
    )
    safety_judge: str = Field(
        "profanity",
        description="Judge of the unsafe rate: a classifier (use one the serving gate does "
        "not use), or 'refusal': the share of adversarial held-out prompts whose reply neither "
        "refuses, warns nor steers away (safety/compliance.py).",
    )
    safety_tolerance: float = Field(
        0.0, ge=0, le=1, description="How much higher an unsafe rate may be and still promote."
    )
    canned_tolerance: float | None = Field(
        0.1,
        ge=0,
        le=1,
        description="How much higher the candidate's canned-reply rate on the benign held-out "
        "prompts may be than the deployed version's and still promote (a candidate that "
        "deflects everyday talk is duller, not safer); null in YAML (or 1) turns it off.",
    )
    confidence: float = Field(
        0.95, gt=0, lt=1, description="Level of the win rate's interval (its lower bound > 0.5)."
    )
    max_new_tokens: int = Field(48, ge=1, description="Reply length when evaluating.")
    generation_batch_size: int = Field(8, ge=1, description="Prompts generated at once.")
    seed: int = Field(0, description="Seed of training and sampling.")

    @field_validator("eval_prompts", mode="before")
    @classmethod
    def _split_prompts(cls, value: list[str] | str) -> list[str]:
        if isinstance(value, str):  # the command line gives "chatterbot,adversarial"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not value:
            raise ValueError("name at least one prompt set or file")
        return value

    @model_validator(mode="after")
    def _known_classifiers(self) -> LoopConfig:
        """An unknown classifier fails when the config is read, not at a round's curation or
        evaluation. 'promoted' is left to the round: a red-team round may promote one later."""
        from alignloop.safety.classifiers import checked_judge_source, checked_source

        if self.safety_classifier != "promoted":
            checked_source("safety_classifier", self.safety_classifier, self.db)
        if self.safety_judge != "promoted":
            checked_judge_source("safety_judge", self.safety_judge, self.db)
        return self

    @model_validator(mode="after")
    def _benign_prompts_for_dullness(self) -> LoopConfig:
        from alignloop.evaluate.prompts import SET_KINDS

        benign = [p for p in self.eval_prompts if SET_KINDS.get(p, "benign") == "benign"]
        if self.canned_tolerance is not None and not benign:
            raise ValueError(
                "canned_tolerance: it is measured on benign held-out prompts; add 'chatterbot' or "
                "a prompt file to eval_prompts, or set canned_tolerance: null"
            )
        return self
