"""The intent table (tests/test_intents.py) through ``--nl rules``, ``llm`` and ``auto``:
fully-correct share and latency. Needs the 'llm' extra.

    python -m benchmarks.bench_llm [--model PATH.gguf] [--threads 1]

"Fully correct" compares what a plan executes: top, per-burst, weights and every filter with its
values (not the notes). Writes benchmarks/results/llm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qrate.extras import llm as llm_mod  # noqa: E402
from qrate.frontend import nl  # noqa: E402
from tests.test_intents import INTENTS, NOW, executed, expected_executed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = llm_mod.load(args.model, n_threads=args.threads)
    filler = llm_mod.SlotFiller(model)
    res: dict = {"model": model.path, "load_s": model.load_s, "intents": len(INTENTS), "modes": {}}
    rows = []
    for mode in ("rules", "llm", "auto"):
        ok, lat, fallbacks, calls0 = 0, [], 0, len(model.calls)
        passes0, prompt0, cpu0 = model.grammar_full_passes, model.prompt_tokens_evaluated, time.process_time()
        for text, spec in INTENTS:
            want = expected_executed(spec)
            t = time.perf_counter()
            compiled, r = nl.compile_text(text, mode, filler if mode != "rules" else None, NOW)
            lat.append(time.perf_counter() - t)
            good = executed(compiled.plan) == want
            ok += good
            fallbacks += r.used == "fallback:rules"
            if mode != "rules":
                rows.append({"mode": mode, "text": text, "correct": good, "used": r.used, "attempts": r.attempts,
                             "slots": r.llm_slots.model_dump(exclude_defaults=True) if r.llm_slots else None})
        calls = model.calls[calls0:]
        res["modes"][mode] = {
            "fully_correct": ok, "share": ok / len(INTENTS), "median_latency_s": statistics.median(lat),
            "max_latency_s": max(lat), "fallbacks": fallbacks, "llm_requests": len(calls),
            "tokens_per_s": (sum(c[2] for c in calls) / sum(c[1] for c in calls)) if calls else None,
            "tokens": sum(c[2] for c in calls), "cpu_s": round(time.process_time() - cpu0, 2),
            # tokens where the model's own pick was refused and the grammar ran over the vocabulary
            "grammar_full_passes": model.grammar_full_passes - passes0,
            "prompt_tokens_evaluated": model.prompt_tokens_evaluated - prompt0,  # the rest came from the KV cache
        }
    print(f"model {os.path.basename(model.path)} loaded in {model.load_s:.2f}s; {len(INTENTS)} intents")
    print(f"{'mode':<7}{'fully correct':>15}{'share':>8}{'median s':>10}{'max s':>8}{'requests':>10}{'fallbacks':>11}"
          f"{'tok/s':>7}{'tokens':>8}{'full passes':>12}{'prompt tok':>11}{'cpu s':>8}")
    for mode, m in res["modes"].items():
        tps = f"{m['tokens_per_s']:.1f}" if m["tokens_per_s"] else "-"
        print(f"{mode:<7}{m['fully_correct']:>15}{m['share']:>8.0%}{m['median_latency_s']:>10.3f}"
              f"{m['max_latency_s']:>8.2f}{m['llm_requests']:>10}{m['fallbacks']:>11}{tps:>7}{m['tokens']:>8}"
              f"{m['grammar_full_passes']:>12}{m['prompt_tokens_evaluated']:>11}{m['cpu_s']:>8.1f}")
    res["rows"] = rows
    out = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "llm.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
