"""Batch 1 against batch N for a submission: samples per second of `shared.task.submit` on this CPU.

Runs `submit.run` on the lab's validation set (res/01_biggest_model/validation_qwen.csv, 24
pairs) with the transformers backend, alternating batch sizes (1, N, 1, N, ...) so both share
the machine's noise, each from an empty sidecar. Appends one row per run to
res/01_biggest_model/submission_batches.jsonl (samples/s over the rows, excluding the model load;
SCS; how many predictions equal batch 1's), which the report's submission paragraph shows.

    .venv/bin/python benchmarks/submit_batches.py [--model smollm2-135m-instruct] [--batch 8] [--reps 2]
"""
import argparse
import tempfile
from pathlib import Path

import pandas as pd

from shared import machine, results
from shared.task import submit

RESULTS = machine.REPO / "res" / "01_biggest_model"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--backend", default="transformers")
    parser.add_argument("--strategy", default="direct")
    parser.add_argument("--data", default=str(RESULTS / "validation_qwen.csv"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    run_id = results.new_run_id()
    first = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for batch in (1, args.batch):
                out = Path(tmp) / f"b{batch}-{rep}.csv"
                s = submit.run(args.data, args.strategy, out, model=args.model, backend=args.backend,
                               n_threads=args.threads, max_new_tokens=args.max_new_tokens, device="cpu",
                               batch_size=batch, encoder="all-MiniLM-L6-v2", progress=False, fresh=True)
                preds = pd.read_csv(out, dtype=str, keep_default_na=False)["rewrite_prompt"].tolist()
                first.setdefault(1, preds) if batch == 1 else None
                row = {"model": args.model, "backend": args.backend, "strategy": args.strategy,
                       "batch_size": batch, "rep": rep, "rows": s["rows"], "computed": s["computed"],
                       "samples_per_s": s["samples_per_s"], "s_per_sample": s["s_per_sample"],
                       "max_new_tokens": args.max_new_tokens, "n_threads": args.threads,
                       "device": s["device"], "errors": s["errors"], "fallbacks": s["fallbacks"],
                       "scs": s["score"]["scs_mean"], "encoder": s["score"]["encoder"],
                       "same_as_batch_1": sum(a == b for a, b in zip(preds, first.get(1, preds))),
                       "data": Path(args.data).name, **machine.info()}
                results.append(RESULTS / "submission_batches.jsonl", row, run_id=run_id)
                print(f"batch {batch} rep {rep}: {s['samples_per_s']:.2f} samples/s, SCS {row['scs']:.3f}, "
                      f"{row['same_as_batch_1']}/{s['rows']} predictions as batch 1")


if __name__ == "__main__":
    main()
