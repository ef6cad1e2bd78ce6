"""Trust scores against the simulation's hidden truth on many populations: the demo's
population (its users, troll mix and red-team share), one per seed, talks to the served base
model over HTTP for the demo's rounds, and every trust setting of `loop_trust.py` is scored on
each round's cut of the store. Seeds beyond the ones trust was designed on are a fresh check.

    python benchmarks/trust_seeds.py --seeds 0-11 [--out FILE] [--work FOLDER] [--rescore]

Unlike the demo, no round trains: the base model answers every round, so later rounds' replies
are the base model's (the demo serves what each round promoted). What is measured is how well
each setting tells the population's trolls from its helpers as their history grows: on 2 CPU
cores about 30 minutes to simulate 12 populations and 15 to score them, where one demo seed
takes 20 to 40.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import device_name
from loop_trust import score_arm, totals

HERE = Path(__file__).resolve().parent
DESIGN_SEEDS = (0, 1)  # the seeds whose demo stores the session-33 trust fixes were made on


def seed_list(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def simulate_population(seed: int, folder: Path, demo, model: str) -> None:
    """The demo's population of `seed` talking to the base model for the demo's rounds."""
    from alignloop.loop.demo import troll_shares
    from alignloop.serve.runner import ServerProcess
    from alignloop.simulate.live import SimulateLiveConfig, simulate

    server = ServerProcess(
        log_path=folder / "server.log",
        db=str(folder / "alignloop.db"),
        model=model,
        max_new_tokens=demo.max_tokens,
    ).start()
    try:
        for number in range(1, demo.rounds + 1):
            settings = SimulateLiveConfig(
                server=server.url,
                users=demo.users,
                turns=demo.turns,
                seed=seed * 1000 + number,
                out=str(folder / f"simulation-{number}"),
                concurrency=demo.concurrency,
                population=f"demo-{seed}",
                max_tokens=demo.max_tokens,
                redteam_share=demo.redteam_share,
                **troll_shares(demo.adversarial_share),
            )
            simulate(settings, lambda done, total: None)
    finally:
        server.stop()


def round_cuts(folder: Path) -> list[tuple[int, int]]:
    """(round, last message id) of each simulated round in `folder`."""
    cuts = []
    for number in range(1, 1 + len(list(folder.glob("simulation-*")))):
        lines = (folder / f"simulation-{number}" / "replies.jsonl").read_text().splitlines()
        cuts.append((number, max(json.loads(line)["message_id"] for line in lines)))
    return cuts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-11", help="Populations, e.g. '0-11' or '2,5'.")
    parser.add_argument("--model", default="smollm2", help="The served model.")
    parser.add_argument("--work", default=str(HERE / "results" / "trust-seeds"))
    parser.add_argument("--out", default=str(HERE / "results" / "trust_seeds.json"))
    parser.add_argument(
        "--rescore", action="store_true", help="Score the stores already in --work again."
    )
    parser.add_argument(
        "--classifier", default="profanity", help="The safety classifier trust reads."
    )
    args = parser.parse_args()
    from alignloop.loop.demo import DemoConfig

    demo = DemoConfig()
    rows, started = [], time.monotonic()
    folders = {seed: Path(args.work) / f"seed-{seed}" for seed in seed_list(args.seeds)}
    missing = [
        str(f) for f in folders.values() if args.rescore and not (f / "alignloop.db").exists()
    ]
    if missing:
        parser.error(
            f"--rescore: no simulated store in {', '.join(missing)}; check --work and --seeds"
        )
    for seed, folder in folders.items():
        if not args.rescore:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            print(f"seed {seed}: simulating", file=sys.stderr)
            simulate_population(seed, folder, demo, args.model)
    for seed, folder in folders.items():
        rows += [
            row | {"seed": seed} for row in score_arm(folder, round_cuts(folder), args.classifier)
        ]
    fresh = [row for row in rows if row["seed"] not in DESIGN_SEEDS]
    result = {
        "population": {
            key: getattr(demo, key)
            for key in ("users", "turns", "rounds", "adversarial_share", "redteam_share")
        },
        "model": args.model,
        "classifier": args.classifier,
        "cuts": rows,
        "totals": totals(rows),
        "totals_fresh_seeds": totals(fresh) if fresh else None,
        "seconds": round(time.monotonic() - started),
        "device": device_name(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({"totals": result["totals"], "fresh": result["totals_fresh_seeds"]}, indent=2))


if __name__ == "__main__":
    main()
