"""Issue 8's targets, measured: `alignloop demo` on the embedded defaults (SmolLM2, SQLite, 30%
adversarial simulated users, 3 rounds, troll-filtered and unfiltered arms), timed, with the gold
judge's good-response and unsafe rates per round and arm and the target checks, in one JSON.

    python benchmarks/loop_demo.py [--quick] [--rounds 3] [--users 12] [--turns 3]
        [--measure-prompts 30] [--seed 0] [--canned-tolerance 0.1] [--safety-classifier NAME]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import get_args

from alignloop.loop.config import RedTeamThumbs
from common import device_name

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "loop_demo.json"))
    parser.add_argument("--work", default=str(HERE / "results" / "loop-demo"))
    parser.add_argument("--quick", action="store_true", help="The tiny model (machinery only).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--turns", type=int, default=None, help="Chat turns per user and round.")
    parser.add_argument(
        "--measure-prompts", type=int, default=None, help="Held-out prompts the gold judge scores."
    )
    parser.add_argument("--seed", type=int, default=0, help="Population, training and sampling.")
    parser.add_argument(
        "--no-judge-red-teaming",
        action="store_true",
        help="Curation does not hold red-teamers' probing and 'unsafe' labels against them.",
    )
    parser.add_argument(
        "--labels-judged-by",
        choices=["classifier", "peers"],
        default="classifier",
        help="What curation holds people's safety labels against.",
    )
    parser.add_argument(
        "--red-team-thumbs",
        choices=get_args(RedTeamThumbs),
        default="apart",
        help="How trust judges thumbs given in red-team conversations.",
    )
    parser.add_argument(
        "--min-scale", type=float, default=0.0, help="Trust: least scale of a shortfall."
    )
    parser.add_argument(
        "--attack-answers",
        action="store_true",
        help="Safe answers in distrusted users' red-team conversations too (loop attack_answers).",
    )
    parser.add_argument(
        "--canned-tolerance",
        type=float,
        default=0.1,
        help="Promotion: how much more often than the deployed version a candidate may can "
        "benign prompts (loop canned_tolerance; a negative value turns the check off).",
    )
    parser.add_argument(
        "--safety-classifier",
        default="profanity",
        help="Curation's safety classifier (a name or folder), which trust reads.",
    )
    parser.add_argument(
        "--safety-judge", default=None, help="Promotion's (default: --safety-classifier)."
    )
    parser.add_argument(
        "--new-users-each-round",
        action="store_true",
        help="A new population every round (default: the same users return each round).",
    )
    args = parser.parse_args()
    from alignloop.loop.demo import DemoConfig, run_demo_loop

    options = {"out": args.work, "quick": args.quick, "rounds": args.rounds, "seed": args.seed}
    options["judge_red_teaming"] = not args.no_judge_red_teaming
    options["labels_judged_by"] = args.labels_judged_by
    options["min_scale"] = args.min_scale
    options["red_team_thumbs"] = args.red_team_thumbs
    options["attack_answers"] = args.attack_answers
    options["canned_tolerance"] = None if args.canned_tolerance < 0 else args.canned_tolerance
    options["returning_users"] = not args.new_users_each_round
    options["safety_classifier"] = args.safety_classifier
    options["safety_judge"] = args.safety_judge
    for name in ("users", "turns", "measure_prompts"):
        if getattr(args, name):
            options[name] = getattr(args, name)
    started = time.time()
    report = run_demo_loop(DemoConfig(**options), print, lambda *_: None)
    data = json.loads((report.parent / "report.json").read_text())
    result = {
        "rounds": data["rounds"],
        "promotion": data["promotion"],
        "targets": data["targets"],
        "seconds": round(time.time() - started),
        "target_seconds": 30 * 60 if not args.quick else 3 * 60,
        "report": str(report),
        "settings": data["settings"],
        "device": device_name(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["targets"]), f"{result['seconds']} s", sep="\n")


if __name__ == "__main__":
    main()
