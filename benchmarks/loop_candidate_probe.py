"""Retrain one round's candidate of a `benchmarks/loop_demo.py` run on variants of its rows, and
read what each variant learnt about declining: a six-minute experiment where a demo takes 25.

    python benchmarks/loop_candidate_probe.py WORK/unfiltered/rounds/unfiltered/round-1 \
        [--variants as_is,safe_twice,safe_response] [--steps 12] [--seed N] [--out FILE]

Each variant but `untrained` trains the round's deployed base model (SmolLM2, as the demo's
round 1 does) with CRINGE on the round's rows, the demo's settings otherwise:
- `untrained`: the base model itself, where every variant starts;
- `as_is`: the rows the round trained on (binary+safe-unlearned.jsonl);
- `safe_twice`: the same with every safe answer (the canned reply in a red-team context) listed
  twice, so each is seen twice as often;
- `safe_response`: the safe answers in the 'safe_response' style (apologise and decline)
  instead of the non-sequitur.
Every variant's greedy replies are then read two ways:
- by the system's own measures, on the promotion's held-out prompts (the built-in sets' last
  12): the share of adversarial prompts the model declines (`alignloop.safety.compliance`)
  and the share of benign ones it answers with the canned reply or another decline;
- for information only, by the simulation's hidden gold judge on the demo's 30 measurement
  prompts (the seed's): good-response and unsafe rates.
A choice made from this benchmark should rest on the first; the gold figures only say whether
the demo could show it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from common import device_name

HERE = Path(__file__).resolve().parent
Rows = list[dict]


def safe_answer_rows(rows: Rows) -> list[bool]:
    """Which liked rows are safe answers: the gate's canned reply (either style)."""
    from alignloop.safety.gate import is_canned

    return [bool(r.get("label")) and is_canned(r["completion"]) for r in rows]


def as_is(rows: Rows) -> Rows:
    return rows


def safe_twice(rows: Rows) -> Rows:
    return rows + [r for r, safe in zip(rows, safe_answer_rows(rows), strict=True) if safe]


def safe_response(rows: Rows) -> Rows:
    from alignloop.safety.gate import SAFE_RESPONSE

    flags = safe_answer_rows(rows)
    return [dict(r, completion=SAFE_RESPONSE) if s else r for r, s in zip(rows, flags, strict=True)]


VARIANTS: dict[str, Callable[[Rows], Rows] | None] = {
    "untrained": None,
    "as_is": as_is,
    "safe_twice": safe_twice,
    "safe_response": safe_response,
}


@cache
def demo_settings():
    """The demo's config and the loop config its rounds run with (the arm does not matter
    for what the probe reads: learning rate, batch size, lengths, held-out prompts)."""
    from alignloop.loop.demo import DemoConfig, loop_config

    demo = DemoConfig()
    return demo, loop_config(demo, "unfiltered", Path("."))


def train_variant(rows: Rows, out: Path, steps: int, seed: int) -> str:
    """A CRINGE candidate from the base model on `rows`, with the demo's settings."""
    from alignloop.train.config import ALGORITHMS
    from alignloop.train.run import train

    demo, loop = demo_settings()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    settings = ALGORITHMS["cringe"](
        model=demo.model, data=str(data), out=str(out / "candidate"), name=out.name,
        learning_rate=loop.learning_rate, batch_size=loop.batch_size,
        max_length=loop.max_length, seed=seed, max_steps=steps,
    )  # fmt: skip
    return str(train("cringe", settings).out)


def replies(model: str, prompts: list[list[dict]], seed: int) -> list[str]:
    from alignloop.backends import load_backend
    from alignloop.backends.base import GenerationParams
    from alignloop.evaluate.generate import generate_replies

    _, loop = demo_settings()
    params = GenerationParams(max_new_tokens=loop.max_new_tokens, temperature=0.0, seed=seed)
    backend = load_backend(model)
    try:
        return generate_replies(backend, prompts, params, loop.generation_batch_size)
    finally:
        backend.close()


def read_variant(model: str, seed: int, gold) -> dict:
    """The system's figures on the promotion's prompts, read as the promotion reads them (the
    refusal judge on the adversarial ones, the canned rate on the benign ones), and the gold
    judge's on the demo's measured prompts."""
    from alignloop.evaluate.safety import canned_rate
    from alignloop.loop.demo import measured_prompts
    from alignloop.loop.evaluation import benign_replies, held_out_prompts, unsafe_rate
    from alignloop.safety.classifiers import load_safety_judge
    from alignloop.safety.compliance import declines

    demo, loop = demo_settings()
    sets = held_out_prompts(loop)
    held = [p for s in sets for p in s.prompts]
    kinds = [s.kind for s in sets for _ in s.prompts]
    measured = measured_prompts(demo.model_copy(update={"seed": seed}))
    asked = held + [[{"role": "user", "content": m.text}] for m in measured]
    said = replies(model, asked, seed)
    own, theirs = said[: len(held)], said[len(held) :]
    benign = benign_replies(sets, own)
    verdicts = [
        gold.judge(question, reply, prompt.adversarial)
        for question, reply, prompt in zip(asked[len(held) :], theirs, measured, strict=True)
    ]
    return {
        "adversarial_declined": _rounded(1 - unsafe_rate(load_safety_judge("refusal"), sets, own)),
        "benign_canned": _rounded(canned_rate(benign)),
        "benign_declined": _rounded(sum(map(declines, benign)) / len(benign)),
        "gold_good": _rounded(sum(v.good for v in verdicts) / len(verdicts)),
        "gold_unsafe": _rounded(sum(v.unsafe for v in verdicts) / len(verdicts)),
        "replies": {
            "adversarial": [r for r, k in zip(own, kinds, strict=True) if k == "adversarial"],
            "benign": benign,
            "measured": [
                {"prompt": m.text, "reply": r, "good": v.good, "unsafe": v.unsafe}
                for m, r, v in zip(measured, theirs, verdicts, strict=True)
            ],
        },
    }


def _rounded(share: float) -> float:
    return round(share, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("round", type=Path, help="A demo round's folder (holding data/).")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=12, help="CRINGE steps (the demo's: 12).")
    parser.add_argument("--seed", type=int, default=0, help="The demo run's seed.")
    parser.add_argument("--work", type=Path, default=HERE / "results" / "candidate-probe")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "loop_candidate_probe.json")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")
    source = args.round / "data" / "binary+safe-unlearned.jsonl"
    if not source.exists():
        parser.error(f"round: {source} not found; name a round folder of a loop_demo.py run")
    from alignloop.simulate.live.gold import GoldJudge

    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    gold, results, base = GoldJudge(), {}, demo_settings()[0].model
    for name in names:
        started = time.time()
        vary = VARIANTS[name]
        varied = vary(rows) if vary else []
        out = args.work / f"{name}-steps{args.steps}-seed{args.seed}"
        model = train_variant(varied, out, args.steps, args.seed) if vary else base
        figures = read_variant(model, args.seed, gold)
        figures |= {"rows": len(varied), "safe_answers": sum(safe_answer_rows(varied))}
        figures["seconds"] = round(time.time() - started)
        results[name] = figures
        print(name, json.dumps({k: v for k, v in figures.items() if k != "replies"}), flush=True)
    report = {"round": str(args.round), "steps": args.steps, "seed": args.seed,
              "variants": results, "device": device_name()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
