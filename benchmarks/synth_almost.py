"""ALMoST end to end (SPEC.md §5): synthetic comparisons -> synthetic reward model -> RMSP -> SFT
-> RLSF, each step measured against a judge that did not build its data.

What it builds, each step cached under --work so an interrupted run picks up where it stopped
(the synth steps and RMSP resume inside their own files; a trained model is reused once its
alignloop.json exists):
1. `alignloop synth run`: synthetic queries, responses of the rubric's vanilla configurations,
   pairs with and without the heuristic length filter. The queries are split (seeded) into
   disjoint evaluation, RMSP and RLSF parts; pairs of evaluation queries are left out of training.
2. Reward models, same base and settings: on the synthetic pairs, on the unfiltered synthetic
   pairs, and on as many real HH-RLHF pairs (harmless-base, a part disjoint from the test part).
   Pairwise accuracy of each on held-out HH-RLHF pairs, beside chance (0.5).
3. `alignloop synth rmsp`: self-play dialogues on the RMSP queries, the synthetic RM keeping the
   best of N replies per turn; `alignloop train sft` on them (the RMSP model).
4. RLSF: `alignloop synth rlsf-prompts` (queries unused by RMSP and evaluation), then
   `alignloop train ppo` from the RMSP model against a synthetic reward model (the synthetic
   pairs again, trained from the RMSP model: PPO shares one base between policy and reward).
5. Win rates on the held-out synthetic queries (greedy replies): RMSP model vs the base and RLSF
   model vs the RMSP model, judged by the real-HH reward model (or --judge), which built none of
   their data; the synthetic RM's verdicts are reported beside, as the optimised-for view.

    python benchmarks/synth_almost.py [--queries 48] [--rm-steps 20] [--sft-steps 20] [--ppo-steps 8]
    python benchmarks/synth_almost.py --quick      # a smoke run on the tiny random model

Defaults are sized for SmolLM2-135M on 2 CPU cores (about an hour). On 'tiny' (--quick) the
replies are random bytes that no response filter keeps, so the quick run pairs the responses by
the rubric's ranking without filters (marked in the result): it checks the plumbing only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from pathlib import Path

from common import alignloop, device_name

HERE = Path(__file__).resolve().parent
HH = HERE.parents[1] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
CHANCE = 0.5
MIN_PAIRS = 2  # fewer synthetic pairs than this cannot train a reward model

QUICK = {  # --quick: every size small, the tiny model, seed queries kept (tiny writes none)
    "model": "tiny",
    "queries": 4,
    "max_candidates": 8,
    "keep_seeds": True,
    "answered_queries": 12,
    "eval_queries": 4,
    "rmsp_queries": 4,
    "rlsf_queries": 4,
    "response_tokens": 12,
    "rm_steps": 2,
    "hh_test": 16,
    "max_length": 96,
    "turns": 2,
    "candidates": 2,
    "rmsp_tokens": 8,
    "user_tokens": 6,
    "sft_steps": 2,
    "ppo_steps": 1,
    "ppo_batch": 4,
    "max_new_tokens": 8,
    "work": str(HERE / "results" / "synth-almost-quick"),
    "out": str(HERE / "results" / "synth_almost_quick.json"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="Smoke run on 'tiny' with tiny sizes.")
    add("--work", default=str(HERE / "results" / "synth-almost"))
    add("--out", default=str(HERE / "results" / "synth_almost.json"))
    add("--model", default="smollm2", help="Base of every model (and of the synth rubric).")
    add(
        "--judge", help="Reward model judging the win rates (default: the real-HH RM trained here)."
    )
    add("--queries", type=int, default=48, help="Synthetic queries to generate.")
    add("--max-candidates", type=int, default=400, help="Query candidates generated at most.")
    add("--keep-seeds", action="store_true", help="Use the seed queries too.")
    add("--answered-queries", type=int, default=None, help="Queries the configurations answer.")
    add("--eval-queries", type=int, default=16, help="Held-out queries for the win rates.")
    add("--rmsp-queries", type=int, default=16, help="Queries that open RMSP dialogues.")
    add("--rlsf-queries", type=int, default=16, help="PPO prompts (unused queries) at most.")
    add("--response-tokens", type=int, default=128, help="Longest synthetic response.")
    add("--rm-steps", type=int, default=20, help="Optimizer steps of each reward model.")
    add("--rm-batch", type=int, default=8, help="Pairs per reward-model step.")
    add("--hh-test", type=int, default=200, help="Held-out HH-RLHF pairs scored.")
    add("--max-length", type=int, default=192, help="Tokens per training sequence.")
    add("--candidates", type=int, default=4, help="RMSP replies sampled per assistant turn.")
    add("--turns", type=int, default=2, help="RMSP assistant turns per dialogue.")
    add("--rmsp-tokens", type=int, default=80, help="Longest RMSP assistant turn.")
    add("--user-tokens", type=int, default=40, help="Longest RMSP user turn.")
    add("--sft-steps", type=int, default=20, help="SFT steps on the RMSP dialogues.")
    add("--ppo-steps", type=int, default=8, help="RLSF PPO steps.")
    add("--ppo-batch", type=int, default=8, help="Rollouts per PPO step.")
    add("--max-new-tokens", type=int, default=80, help="Longest evaluation reply.")
    add("--batch-size", type=int, default=8, help="Prompts generated at once.")
    add("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args()
    return args


def once(folder: Path, *args: str) -> Path:
    """Train `alignloop ARGS --out folder` unless a finished version is there (a trainer
    resumes from its checkpoints otherwise)."""
    if not (folder / "alignloop.json").exists():
        started = time.time()
        alignloop(*args, "--out", str(folder))
        print(f"built {folder.name} in {time.time() - started:.0f} s", flush=True)
    return folder


def synth(*args: str) -> str:
    return alignloop("synth", *args)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


# --- 1. synthetic comparisons -------------------------------------------------------------


def rubric_for(work: Path, model: str) -> Path | None:
    """The packaged rubric for smollm2; for another base, three configurations of it (better
    demonstrations > worse, more shots > fewer)."""
    if model == "smollm2":
        return None
    path = work / "rubric.yaml"
    path.write_text(
        "configurations:\n"
        f"  - {{name: A, model: {model}, demonstrations: long, shots: 3}}\n"
        f"  - {{name: B, model: {model}, demonstrations: short, shots: 3}}\n"
        f"  - {{name: C, model: {model}, demonstrations: short, shots: 1}}\n"
        "ranking: [A, B, C]\n"
    )
    return path


def synthetic_comparisons(work: Path, args) -> Path:
    folder = work / "synth"
    if (folder / "pairs.jsonl").exists():
        return folder
    options = ["--out", str(folder), "--query-model", args.model, "--seed", str(args.seed)]
    options += ["--num-queries", str(args.queries), "--max-candidates", str(args.max_candidates)]
    options += ["--response-max-new-tokens", str(args.response_tokens)]
    options += ["--batch-size", str(args.batch_size)]
    if rubric := rubric_for(work, args.model):
        options += ["--rubric", str(rubric)]
    if args.keep_seeds:
        options.append("--keep-seeds")
    if args.answered_queries:
        options += ["--max-queries", str(args.answered_queries)]
    started = time.time()
    synth("run", *options)
    print(f"synthetic comparisons in {time.time() - started:.0f} s", flush=True)
    return folder


def split_queries(work: Path, folder: Path, args) -> dict[str, Path]:
    """Disjoint evaluation and RMSP query files (seeded); RLSF gets what neither uses."""
    rows = read_jsonl(folder / "queries.jsonl")
    random.Random(args.seed).shuffle(rows)
    held = rows[: args.eval_queries]
    rmsp = rows[args.eval_queries : args.eval_queries + args.rmsp_queries]
    if len(rmsp) < args.rmsp_queries:
        print(f"only {len(rows)} queries: RMSP gets {len(rmsp)}, RLSF may get none", flush=True)
    return {
        "eval": write_jsonl(work / "queries-eval.jsonl", held),
        "rmsp": write_jsonl(work / "queries-rmsp.jsonl", rmsp),
    }


def ranked_pairs(folder: Path, rubric: Path) -> list[dict]:
    """Quick-mode stand-in: consecutive configurations of the ranking paired with no filter."""
    import yaml

    ranking = yaml.safe_load(rubric.read_text())["ranking"]
    answers = {
        name: {r["query_id"]: r for r in read_jsonl(folder / "responses" / f"{name}.jsonl")}
        for name in ranking
    }
    pairs = []
    for better, worse in itertools.pairwise(ranking):
        for query_id, row in answers[better].items():
            chosen, rejected = row["responses"][0], answers[worse][query_id]["responses"][0]
            if chosen.strip() and rejected.strip() and chosen != rejected:
                pairs.append({"prompt": row["query"], "chosen": chosen, "rejected": rejected,
                              "query_id": query_id})  # fmt: skip
    return pairs


def training_pairs(work: Path, folder: Path, held: Path, args) -> dict[str, Path | bool]:
    """Synthetic pairs with and without the length filter, evaluation queries left out."""
    held_ids = {row["id"] for row in read_jsonl(held)}
    found = {}
    fallback = False
    for name, source in (("synth", "pairs.jsonl"), ("nofilter", "pairs-nofilter.jsonl")):
        rows = [r for r in read_jsonl(folder / source) if r.get("query_id") not in held_ids]
        if len(rows) < MIN_PAIRS and args.quick:
            rows, fallback = ranked_pairs(folder, work / "rubric.yaml"), True
            rows = [r for r in rows if r["query_id"] not in held_ids]
        if len(rows) < MIN_PAIRS:
            raise SystemExit(f"{source}: {len(rows)} pairs; generate more queries (--queries)")
        found[name] = write_jsonl(work / f"pairs-{name}.jsonl", rows)
    return {**found, "fallback": fallback}


# --- 2. reward models and their accuracy on real preferences ------------------------------


def hh_split(work: Path, train_pairs: int, args) -> dict[str, Path]:
    """HH-RLHF pairs (seeded order): the first --hh-test for testing, the next `train_pairs`
    (disjoint) for the real-data reward model."""
    from alignloop.train.data import load_examples

    pairs = load_examples(HH, "pairs", skip_bad=True)
    order = list(range(len(pairs)))
    random.Random(args.seed).shuffle(order)

    def rows(indices):
        return [
            {"prompt": pairs[i].prompt, "chosen": pairs[i].chosen, "rejected": pairs[i].rejected}
            for i in indices
        ]

    test, train = order[: args.hh_test], order[args.hh_test : args.hh_test + train_pairs]
    return {
        "test": write_jsonl(work / "hh-test.jsonl", rows(test)),
        "train": write_jsonl(work / "hh-train.jsonl", rows(train)),
    }


def reward_args(model: str, data: Path, args) -> list[str]:
    return [
        "train", "reward", "--model", model, "--data", str(data),
        "--max-steps", str(args.rm_steps), "--batch-size", str(args.rm_batch),
        "--max-length", str(args.max_length), "--seed", str(args.seed), "--save-every", "10",
    ]  # fmt: skip


def reward_models(work: Path, data: dict[str, Path], args) -> dict[str, str]:
    return {
        name: str(once(work / f"rm-{name}", *reward_args(args.model, data[name], args)))
        for name in ("synth", "nofilter", "hh")
    }


def accuracies(work: Path, models: dict[str, str], test: Path) -> dict[str, float]:
    cache = work / "accuracy.json"
    found = json.loads(cache.read_text()) if cache.exists() else {}
    for name, folder in models.items():
        if name not in found:
            printed = alignloop("evaluate", "reward", "--model", folder, "--data", str(test))
            found[name] = float(printed.split("pairwise accuracy ")[1].split()[0])
            cache.write_text(json.dumps(found, indent=2))
    return found


# --- 3. RMSP and SFT; 4. RLSF ---------------------------------------------------------------


def rmsp(work: Path, queries: Path, reward_model: str, args) -> Path:
    out = work / "rmsp.jsonl"
    synth(
        "rmsp", "--queries", str(queries), "--reward-model", reward_model, "--out", str(out),
        "--assistant-model", args.model, "--user-model", args.model,
        "--candidates", str(args.candidates), "--turns", str(args.turns),
        "--max-new-tokens", str(args.rmsp_tokens), "--user-max-new-tokens", str(args.user_tokens),
        "--batch-size", str(args.batch_size),
        "--seed", str(args.seed),
    )  # fmt: skip
    return out


def rmsp_stats(out: Path) -> dict:
    rows = read_jsonl(out)
    turns = [t for row in rows for t in row["meta"]["turns"]]
    candidates = [s for t in turns for s in t["candidate_scores"] if s is not None]
    return {
        "dialogues": len(rows),
        "assistant_turns": len(turns),
        "mean_chosen_score": sum(t["score"] for t in turns) / len(turns),
        "mean_candidate_score": sum(candidates) / len(candidates),
    }


def sft(work: Path, dialogues: Path, args) -> str:
    options = [
        "train", "sft", "--model", args.model, "--data", str(dialogues),
        "--max-steps", str(args.sft_steps),
        "--batch-size", str(min(args.batch_size, len(read_jsonl(dialogues)))),
        "--max-length", str(args.max_length), "--seed", str(args.seed),
    ]  # fmt: skip
    return str(once(work / "sft", *options))


def rlsf(work: Path, sft_model: str, pairs: Path, excluded: list[Path], args) -> dict:
    prompts = work / "rlsf-prompts.jsonl"
    synth(
        "rlsf-prompts", "--queries", str(work / "synth" / "queries.jsonl"),
        "--exclude", ",".join(map(str, excluded)), "--out", str(prompts),
        "--limit", str(args.rlsf_queries),
    )  # fmt: skip
    reward_model = once(work / "rm-synth-on-sft", *reward_args(sft_model, pairs, args))
    policy = once(
        work / "rlsf", "train", "ppo", "--model", sft_model, "--reward-model", str(reward_model),
        "--data", str(prompts), "--max-steps", str(args.ppo_steps),
        "--batch-size", str(min(args.ppo_batch, len(read_jsonl(prompts)))),
        "--max-new-tokens", str(args.rmsp_tokens),
        "--max-length", str(args.max_length), "--seed", str(args.seed), "--save-every", "5",
    )  # fmt: skip
    return {"model": str(policy), "reward_model": str(reward_model), "prompts": str(prompts)}


def ppo_metrics(folder: Path) -> dict:
    """Reward (the synthetic RM's score) and KL to the reference, from the trainer's metrics."""
    info = json.loads((folder / "alignloop.json").read_text())
    history = read_jsonl(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else []
    steps = [h for h in history if "score" in h]

    def mean(key, rows):
        return sum(r[key] for r in rows) / len(rows) if rows else None

    half = max(1, len(steps) // 2)
    return {
        "final": {k: info["metrics"].get(k) for k in ("score", "kl", "policy_loss", "value_loss")},
        "score_first_half": mean("score", steps[:half]),
        "score_second_half": mean("score", steps[half:]),
        "kl_first_half": mean("kl", steps[:half]),
        "kl_second_half": mean("kl", steps[half:]),
        "steps": info.get("steps"),
        "train_seconds": info["metrics"].get("train_seconds"),
    }


# --- 5. win rates -----------------------------------------------------------------------


def replies(work: Path, name: str, model: str, prompts: list, args) -> list[str]:
    from alignloop.backends import load_backend
    from alignloop.backends.base import GenerationParams

    cache = work / f"replies-{name}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    backend = load_backend(model)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0, seed=0)
    try:
        got = [c[0].text for c in backend.generate(prompts, params)]
    finally:
        backend.close()
    cache.write_text(json.dumps(got))
    return got


def win_rates(prompts: list, answers: dict[str, list[str]], judges: dict[str, str]) -> dict:
    from alignloop.evaluate.judges import RewardModelJudge, win_rate

    matches = {"rmsp_vs_base": ("rmsp", "base"), "rlsf_vs_rmsp": ("rlsf", "rmsp"),
               "rlsf_vs_base": ("rlsf", "base")}  # fmt: skip
    return {
        judge_name: {
            match: win_rate(RewardModelJudge(folder).compare(prompts, answers[a], answers[b]))
            for match, (a, b) in matches.items()
        }
        for judge_name, folder in judges.items()
    }


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if not HH.exists():
        raise SystemExit(f"skipped: {HH} is missing (the benchmark reads ../shared/data)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.time()

    def lap(step: str) -> None:
        nonlocal clock
        seconds[step] = round(time.time() - clock, 1)
        clock = time.time()

    folder = synthetic_comparisons(work, args)
    queries = split_queries(work, folder, args)
    pairs = training_pairs(work, folder, queries["eval"], args)
    hh = hh_split(work, len(read_jsonl(pairs["synth"])), args)
    lap("synthetic comparisons")
    models = reward_models(work, {"synth": pairs["synth"], "nofilter": pairs["nofilter"],
                                  "hh": hh["train"]}, args)  # fmt: skip
    accuracy = accuracies(work, models, hh["test"])
    lap("reward models")
    dialogues = rmsp(work, queries["rmsp"], models["synth"], args)
    sft_model = sft(work, dialogues, args)
    lap("rmsp + sft")
    rl = rlsf(work, sft_model, pairs["synth"], [queries["rmsp"], queries["eval"]], args)
    lap("rlsf")
    prompts = [[{"role": "user", "content": r["query"]}] for r in read_jsonl(queries["eval"])]
    answers = {
        name: replies(work, name, model, prompts, args)
        for name, model in (("base", args.model), ("rmsp", sft_model), ("rlsf", rl["model"]))
    }
    judge = args.judge or models["hh"]
    wins = win_rates(prompts, answers, {"judge": judge, "synthetic_rm": models["synth"]})
    lap("win rates")
    report = {
        "quick": args.quick,
        "reward_model_accuracy_on_hh": {**accuracy, "chance": CHANCE},
        "pairs": {
            "synthetic": len(read_jsonl(pairs["synth"])),
            "synthetic_nofilter": len(read_jsonl(pairs["nofilter"])),
            "hh_train": len(read_jsonl(hh["train"])),
            "hh_test": len(read_jsonl(hh["test"])),
            "quick_fallback_unfiltered_rank_pairs": pairs["fallback"],
        },
        "rmsp": rmsp_stats(dialogues),
        "rlsf_ppo": ppo_metrics(Path(rl["model"])),
        "win_rates": wins,
        "judge": {"folder": judge, "hh_accuracy": accuracy.get("hh") if not args.judge else None},
        "eval_queries": len(prompts),
        "models": {**models, "rmsp_sft": sft_model, **{f"rlsf_{k}": v for k, v in rl.items()}},
        "settings": vars(args),
        "seconds": seconds,
        "device": device_name(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(
        json.dumps({k: report[k] for k in ("reward_model_accuracy_on_hh", "win_rates")}, indent=2)
    )


if __name__ == "__main__":
    main()
