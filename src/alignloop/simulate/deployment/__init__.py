"""A simulated deployment written straight into the store, with its ground truth kept aside.

Helpers (the majority) and trolls of the SPEC.md §2 types (config.py) chat with a simulated
model, give thumbs with reasons and corrections, regenerate replies, vote side by side, red-team
and label replies safe or unsafe. Rows have exactly the shapes the server writes (repository.py
and serve/chat.py): bot messages carry the context snapshot, the generation record with the
safety gate's scores, the model version and the tail hash; a dislike is the UI's sequence of
events (dislike, then with a reason, then with the "what should I have said" text); a
regeneration is a second bot message at the same position, a `regenerate` comparison, and the
loser pointing at the winner; red-team replies get the user's safety label; a gate decision gets
a classifier label. Curation therefore reads simulated data as it reads real data, and
`Population` says what is true: each user's type, each bot reply's quality, which human messages
were inappropriate, and the quality of each compared response.

Rows are written in bulk with ids assigned by the simulation (bulk.py): nothing else may write
to the store while a simulation runs.

Modules: config (settings, user types), truth (`Population`), simulation (the entry points),
users (who, how active, when), model (versions, replies, safety gate), conversations, feedback,
comparisons (what users do), rows (row shapes), bulk (writing), state (what the parts share).
"""

from alignloop.simulate.deployment.config import (
    CATEGORY_QUALITY,
    MODEL_CATEGORIES,
    PROVOKED_MIX,
    QUALITIES,
    SAFETYMIX_NAMES,
    STANDARD_MIX,
    TROLL_TYPES,
    USER_TYPES,
    DeploymentConfig,
    FeedbackRates,
)
from alignloop.simulate.deployment.feedback import FITTING_REASON
from alignloop.simulate.deployment.simulation import simulate_deployment, simulate_into
from alignloop.simulate.deployment.truth import Population

__all__ = [
    "CATEGORY_QUALITY",
    "FITTING_REASON",
    "MODEL_CATEGORIES",
    "PROVOKED_MIX",
    "QUALITIES",
    "SAFETYMIX_NAMES",
    "STANDARD_MIX",
    "TROLL_TYPES",
    "USER_TYPES",
    "DeploymentConfig",
    "FeedbackRates",
    "Population",
    "simulate_deployment",
    "simulate_into",
]
