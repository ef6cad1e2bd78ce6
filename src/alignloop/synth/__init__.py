"""ALMoST synthetic feedback (SPEC §5): comparisons of vanilla model configurations, no people.

1. `synth queries` (queries.py): user queries from ~120 packaged seed queries (seed_queries.txt),
   10-shot, T = 1.2, top-p 0.9, <= 64 tokens; filtered by length (30..250 characters), final
   punctuation, duplicates and ROUGE-L F >= 0.5 against the seeds and every kept query.
2. `synth responses` (responses.py): each configuration of the rubric (rubric.py; the packaged
   rubric.yaml = configs/synth-rubric.yaml) answers each query, T = 1.0, top-p 0.9. A
   configuration is model + demonstration set ("short" or "long", or your own) + shots +
   sampling; `smollm2:layers=N` is the embedded model cut to its first N decoder layers, the
   "smaller model" of the family.
3. `synth comparisons` (comparisons.py): the response filter and the heuristic length pair
   filter (filters.py), then pairs.jsonl, pairs-nofilter.jsonl, rankings.jsonl (the trainer's
   pairs and rankings formats) and summary.json with every drop count.
`synth run` chains the three from one config (configs/synth.yaml); every step resumes in its
--out folder after a crash and skips what was already generated.

    alignloop synth run --config configs/synth.yaml
    alignloop train reward --data runs/synth/pairs.jsonl          # or rankings.jsonl
"""
