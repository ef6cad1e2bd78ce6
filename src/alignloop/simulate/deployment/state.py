"""What the parts of one simulation share: the run (`Run`), a simulated user (`Person`) and a
conversation under way (`Dialogue`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alignloop.simulate.deployment.bulk import BulkWriter, TailHash
from alignloop.simulate.deployment.config import DeploymentConfig
from alignloop.simulate.deployment.truth import Population
from alignloop.simulate.texts import TemplateTexts, Topic


@dataclass
class Run:
    """One simulation. Every random choice goes through `rng`, always in the same order, so a
    seed gives the same rows; `writer` assigns ids and writes rows; `truth` collects what is
    true of them."""

    config: DeploymentConfig
    rng: random.Random
    texts: TemplateTexts
    writer: BulkWriter
    truth: Population


@dataclass
class Person:
    id: int
    kind: str  # "helper" or a troll type
    pseudonym: str
    weight: float  # activity: their share of the messages


@dataclass
class Dialogue:
    person: Person
    conversation_id: int
    mode: str  # "chat" or "redteam"
    version_id: int
    topic: Topic
    clock: datetime
    context: list[dict[str, str]] = field(default_factory=list)
    hashes: TailHash = field(default_factory=TailHash)
    previous_bot: str | None = None

    def tick(self, low: float, high: float, rng: random.Random) -> datetime:
        self.clock += timedelta(seconds=rng.uniform(low, high))
        return self.clock
