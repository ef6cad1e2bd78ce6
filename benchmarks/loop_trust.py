"""Trust scores re-scored against the simulation's hidden truth, round by round, on the stores
`benchmarks/loop_demo.py` left behind: how many trolls and helpers (honest red-teamers among
them) each trust setting would distrust, and how well its scores rank trolls above helpers.

    python benchmarks/loop_trust.py WORK/troll-filtered [WORK/unfiltered ...] [--out FILE]

Each arm folder holds the store (`alignloop.db`) and the simulation's truth files
(`simulation-N/users.jsonl`, read here for the report only). Round N's cut is the store up to
that round's last message, as its curation saw it; every cut is scored by the profanity
classifier, as the demo's curation does, or by `--classifier`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from common import device_name

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "session 32 (words only, red-team thumbs with everyday ones, 0.35)": {
        "thumbs_features": "words",
        "red_team_thumbs": "with_everyday",
        "max_troll_score": 0.35,
    },
    "session 33 (red-team thumbs left out, 0.35)": {
        "red_team_thumbs": "left_out",
        "max_troll_score": 0.35,
    },
    "default": {},
    "red-team thumbs as their own signal": {"red_team_thumbs": "own_signal"},
    "judge_red_teaming false": {"judge_red_teaming": False},
    "labels_judged_by peers": {"labels_judged_by": "peers"},
}


def truth(arm: Path) -> dict[str, str]:
    """pseudonym -> user type, with '/redteam' for red-teamers."""
    kinds = {}
    for path in sorted(arm.glob("simulation-*/users.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            user = json.loads(line)
            kinds[user["pseudonym"]] = user["user_type"] + ("/redteam" if user["redteam"] else "")
    return kinds


def round_cuts(engine) -> list[tuple[int, int]]:
    """(round number, its last message id) of every loop round in the store."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.store.models import LoopRound

    with Session(engine) as session:
        rows = session.execute(
            select(LoopRound.number, LoopRound.last_message_id).order_by(LoopRound.number)
        ).all()
    return [(number, last) for number, last in rows]


def score_cut(tables, last: int, kinds: pd.Series, options: dict) -> dict:
    """One setting's trust on the store up to message `last`; `kinds` maps user_id -> type."""
    from alignloop.curate.run import consenting_trust
    from alignloop.curate.trust import DeploymentTrustConfig
    from alignloop.safety.train import ranking_auc

    cut = dataclasses.replace(
        tables,
        messages=tables.messages[tables.messages["message_id"] <= last],
        feedback=tables.feedback[tables.feedback["message_id"] <= last],
        safety_labels=tables.safety_labels[tables.safety_labels["message_id"] <= last],
    )
    config = DeploymentTrustConfig(**options)
    table = consenting_trust(cut, config)  # as curation scores them
    table["kind"] = table["user_id"].map(kinds)
    table = table.dropna(subset=["kind"])  # anyone outside the simulation's truth files
    troll = ~table["kind"].str.startswith("helper").to_numpy()
    red_teamer = table["kind"].str.endswith("/redteam").to_numpy()
    out = (table["troll_score"] > config.max_troll_score).to_numpy()
    return {
        "trolls": int(troll.sum()),
        "trolls_distrusted": int((out & troll).sum()),
        "helpers": int((~troll).sum()),
        "helpers_distrusted": int((out & ~troll).sum()),
        "red_teaming_helpers_distrusted": int((out & ~troll & red_teamer).sum()),
        "auc": ranking_auc(table["troll_score"].to_numpy(), troll),
        "scores": table[["kind", "troll_score"]].round(4).to_numpy().tolist(),
    }


def score_arm(
    arm: Path, cuts_of_arm: list[tuple[int, int]] | None = None, classifier: str = "profanity"
) -> list[dict]:
    """Every setting's trust on every round's cut of an arm folder's store (the loop's rounds,
    or the given (round, last message id) cuts), the messages scored by `classifier` (a name
    or folder `load_classifier` takes)."""
    from alignloop.curate.load import load_store
    from alignloop.curate.run import score_messages
    from alignloop.safety.classifiers import load_classifier
    from alignloop.store.db import make_engine

    engine = make_engine(str(arm / "alignloop.db"))
    tables = load_store(engine)
    cuts_of_arm = round_cuts(engine) if cuts_of_arm is None else cuts_of_arm
    engine.dispose()
    tables.messages["p_unsafe"] = score_messages(tables.messages, load_classifier(classifier), 2048)
    kinds = tables.users.set_index("user_id")["pseudonym"].map(truth(arm))
    rows = []
    for number, last in cuts_of_arm:
        row = {"arm": str(arm), "round": number}
        for name, options in SETTINGS.items():
            row[name] = score_cut(tables, last, kinds, options)
        rows.append(row)
        print(arm.name, number, json.dumps({n: without_scores(row[n]) for n in SETTINGS}))
    return rows


def totals(cuts: list[dict]) -> dict:
    return {name: summed([row[name] for row in cuts]) for name in SETTINGS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", help="Arm folders of loop_demo.py's work folder.")
    parser.add_argument("--out", default=str(HERE / "results" / "loop_trust.json"))
    parser.add_argument(
        "--classifier", default="profanity", help="The safety classifier (the demo's curation's)."
    )
    args = parser.parse_args()
    cuts = [row for arm in map(Path, args.arms) for row in score_arm(arm, None, args.classifier)]
    result = {"cuts": cuts, "totals": totals(cuts), "device": device_name()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["totals"], indent=2))


def without_scores(scored: dict) -> dict:
    return {key: value for key, value in scored.items() if key != "scores"}


def summed(rows: list[dict]) -> dict:
    counts = {key: sum(r[key] for r in rows) for key in rows[0] if key not in ("auc", "scores")}
    aucs = [r["auc"] for r in rows if r["auc"] is not None]
    return counts | {"mean_auc": round(float(np.mean(aucs)), 3) if aucs else None}


if __name__ == "__main__":
    main()
