"""The simulated model: its versions (each serves an equal slice of the period), its replies of
drawn categories, and the two-stage safety gate in front of it, logged as the server logs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from sqlalchemy import select

from alignloop.backends.base import GenerationParams
from alignloop.safety.gate import CannedReplies
from alignloop.simulate.deployment.config import CATEGORY_QUALITY
from alignloop.simulate.deployment.state import Dialogue, Run
from alignloop.store.models import ModelVersion

# The server's default sampling settings (GenerationParams defaults = ServeConfig defaults).
_SERVER_PARAMS = GenerationParams().as_dict()


@dataclass
class Reply:
    text: str
    category: str  # see CATEGORY_QUALITY
    generation: dict[str, Any]
    gated: bool = False
    warranted: bool = False  # a canned reply to something really harmful
    input_score: float | None = None
    classifier_labels: list[tuple[str, float]] = field(default_factory=list)  # (stage, score)

    @property
    def quality(self) -> str:
        return CATEGORY_QUALITY[self.category]


class SimulatedModel:
    def __init__(self, run: Run):
        self.run = run
        self.canned = CannedReplies(run.config.canned_reply)
        self.versions: list[tuple[int, str]] = []  # (id, name) in serving order
        self._mixes = {
            False: _names_and_cumulative(run.config.standard_mix),
            True: _names_and_cumulative(run.config.provoked_mix),
        }

    # -- versions

    def add_versions(self) -> None:
        """(id, name) per configured version, the existing row reused as the server does."""
        names = self.run.config.model_versions
        writer = self.run.writer
        with writer.engine.connect() as conn:
            existing = dict(
                conn.execute(
                    select(ModelVersion.name, ModelVersion.id).where(ModelVersion.name.in_(names))
                ).all()
            )
        parent = None
        for name in names:
            version_id = existing.get(name)
            if version_id is None:
                version_id = writer.new_id("model_versions")
                writer.add("model_versions", self._version_row(version_id, name, parent))
            self.versions.append((version_id, name))
            parent = version_id

    def _version_row(self, version_id: int, name: str, parent: int | None) -> dict[str, Any]:
        return {
            "id": version_id,
            "name": name,
            "base": "simulated",
            "path": None,
            "parent_id": parent,
            "metrics": {},
            "config": {},
            "created_at": self.run.config.start,
        }

    def version_at(self, when: datetime) -> tuple[int, str]:
        """The version serving at `when`: each takes an equal slice of the period, in order."""
        config = self.run.config
        share = (when - config.start) / timedelta(days=config.days)
        return self.versions[min(int(share * len(self.versions)), len(self.versions) - 1)]

    # -- replies

    def draw_category(self, provoked: bool) -> str:
        names, cumulative = self._mixes[provoked]
        return self.run.rng.choices(names, cum_weights=cumulative)[0]

    def reply(
        self,
        dialogue: Dialogue,
        harmful_input: bool,
        category: str,
        human_text: str,
        draft: str | None,
        input_score: float | None = None,
    ) -> Reply:
        """The bot's reply as the server would log it: the input gate may answer a canned
        reply; otherwise the model's reply, which the output gate may replace."""
        gate, rng = self.run.config.gate, self.run.rng
        scores: dict[str, float] = {}
        if gate:
            if input_score is None:  # a regeneration reuses the first check (it did not fire)
                input_score, fired = self._gate_check(harmful_input)
                if fired:
                    return self._canned({"input_score": input_score}, harmful_input, "input")
            scores["input_score"] = input_score
        text_ = draft or self.run.texts.reply(
            rng, category, dialogue.topic, human_text, dialogue.previous_bot
        )
        if gate:
            output_score, fired = self._gate_check(category == "unsafe")
            scores["output_score"] = output_score
            if fired:
                return self._canned(scores, category == "unsafe", "output", input_score)
        finish = "length" if rng.random() < 0.03 else "stop"
        return Reply(text_, category, self._generation(finish, scores), input_score=input_score)

    # -- the safety gate

    def _gate_check(self, harmful: bool) -> tuple[float, bool]:
        """A classifier score and whether it fires (recall on harmful text, false positives
        on harmless text)."""
        config, rng = self.run.config, self.run.rng
        threshold = config.gate_threshold
        fires = rng.random() < (config.gate_recall if harmful else config.gate_false_positive)
        if fires:
            score = rng.uniform(threshold, 1.0)
        elif harmful:
            score = min(rng.uniform(0.4 * threshold, threshold), threshold - 1e-6)
        else:
            score = rng.uniform(0.0, 0.4 * threshold)
        return round(score, 6), fires

    def _canned(
        self,
        scores: dict[str, float],
        warranted: bool,
        stage: str,
        input_score: float | None = None,
    ) -> Reply:
        return Reply(
            self.canned.pick(self.run.rng),
            "canned" if warranted else "canned_needless",
            self._generation("content_filter", scores),
            gated=True,
            warranted=warranted,
            input_score=scores.get("input_score", input_score),
            classifier_labels=[(stage, scores[f"{stage}_score"])],
        )

    def _generation(self, finish: str, scores: dict[str, float]) -> dict[str, Any]:
        config = self.run.config
        record: dict[str, Any] = {**_SERVER_PARAMS, "finish_reason": finish}
        if config.gate:
            record["safety_gate"] = {
                "classifier": config.gate_classifier,
                "threshold": config.gate_threshold,
                **scores,
            }
        return record


def _names_and_cumulative(mix: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(mix), tuple(accumulate(mix.values()))
