"""Make a submission: the competition's CSV in, `id,rewrite_prompt` out, resumable.

    python -m shared.submit test.csv --strategy direct --model qwen2.5-coder-1.5b-instruct \
        --out submission.csv

Every input row gets a prediction, in input order; a blank or failed one becomes
metrics.FALLBACK_PROMPT and is counted. Each finished row is appended at once to a sidecar file
(`<out>.partial.jsonl`) under a key of id, a hash of the two texts, strategy, model, backend
and template hash, so a run
that is interrupted (Ctrl-C, a killed job) resumes where it stopped without redoing a row;
`--fresh` ignores the sidecar. The submission itself is written atomically at the end.

It prints the measured seconds per sample, the projection for 1300 samples against the 9-hour
budget (on this machine: a Kaggle GPU is another machine), and, when the input has
`rewrite_prompt`, the SCS with its 95% interval and the encoder that produced it.

Everything (file, strategy, model, backend, output folder) is checked before a model is loaded.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import catalog, dataio, loading, metrics, prompts, results
from .catalog import LabError

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
SAMPLES = 1300            # the hidden test set
BUDGET_HOURS = 9.0        # Kaggle's limit for the whole notebook


def sidecar(out: str | os.PathLike) -> Path:
    """Where the finished rows of a submission to `out` are kept while it runs."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


def pair_hash(pair) -> str:
    """8 hex characters of sha1 over a row's two texts: a resumed row must be the same pair."""
    text = f"{pair.original_text}\x00{pair.rewritten_text}"
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def row_key(row: dict) -> tuple:
    """What makes a finished row reusable: the same pair, strategy, model, backend, template."""
    return (str(row["id"]), row.get("pair_hash"), row["strategy"], row["model"], row["backend"],
            row["template_hash"])


def projection(seconds_per_sample: float, samples: int = SAMPLES,
               budget_hours: float = BUDGET_HOURS) -> dict:
    """Hours for `samples` at the measured rate, and whether they fit the budget."""
    hours = seconds_per_sample * samples / 3600
    return {"samples": samples, "hours": hours, "budget_hours": budget_hours,
            "fits": hours <= budget_hours}


def check(args) -> None:
    """Every LabError the arguments can cause, before any model is loaded."""
    prompts.check_strategy(args.strategy)
    if prompts.needs_model(args.strategy):
        spec = catalog.get(args.model)
        loading.check(spec, args.backend, "none")
        catalog.resolve(spec)  # the weights are here and intact (sha256)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise LabError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise LabError(f"--out {out} is a folder; name a .csv file")
    if args.max_new_tokens < 1 or args.max_text_tokens < 1:
        raise LabError("--max-new-tokens and --max-text-tokens must be at least 1")
    if args.mean_prompt is not None and not args.mean_prompt.strip():
        raise LabError("--mean-prompt must not be blank")


def run(test: str | os.PathLike, strategy: str, out: str | os.PathLike,
        model: str = DEFAULT_MODEL, backend: str = "llama_cpp", n_threads: int | None = None,
        max_new_tokens: int = 32, max_text_tokens: int = 384, mean_prompt: str | None = None,
        reuse_prefix: bool = True, encoder: str | None = None, fresh: bool = False,
        progress: bool = True, _recover=None) -> dict:
    """Write the submission for `test` to `out`; returns a summary (also printed by main).

    `_recover` replaces prompts.recover (tests use it to interrupt a run at a chosen row).
    """
    args = argparse.Namespace(strategy=strategy, model=model, backend=backend, out=out,
                              max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens,
                              mean_prompt=mean_prompt)
    pairs = dataio.read_pairs(test)
    check(args)
    uses_model = prompts.needs_model(strategy)
    model_name = model if uses_model else "none"
    backend_name = backend if uses_model else "none"
    base = {"strategy": strategy, "model": model_name, "backend": backend_name,
            "template_hash": prompts.template_hash(strategy, mean_prompt)}
    side = sidecar(out)
    if fresh:
        side.unlink(missing_ok=True)
    wanted = {row_key({**base, "id": p.id, "pair_hash": pair_hash(p)}): p.id
              for p in pairs.itertuples(index=False)}
    done = {}
    for row in results.read(side).to_dict("records"):
        if row_key(row) in wanted:
            done[str(row["id"])] = row
    todo = [p for p in pairs.itertuples(index=False) if p.id not in done]
    print(f"{len(pairs)} rows in {test}; {len(pairs) - len(todo)} already done in {side}, "
          f"{len(todo)} to do; strategy {strategy} ({base['template_hash']}), model {model_name}")
    recover = _recover or prompts.recover
    lm = None
    if todo and uses_model:
        opts = loading.device_options(backend, "cpu", n_threads) if backend == "llama_cpp" else {"n_threads": n_threads}
        lm = loading.load(model, backend, **opts)
    measured = []
    try:
        for pair in tqdm(todo, desc=f"submit {strategy}", disable=not progress):
            start = time.perf_counter()
            row = recover(lm, strategy, pair.original_text, pair.rewritten_text,
                          max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens,
                          mean_prompt=mean_prompt, reuse_prefix=reuse_prefix and lm is not None
                          and lm.backend == "llama_cpp")
            wall = time.perf_counter() - start
            record = {**base, "id": pair.id, "pair_hash": pair_hash(pair),
                      "prediction": row["prediction"],
                      "raw_output": row["raw_output"], "error": row["error"],
                      "model_calls": row["model_calls"], "output_tokens": row["output_tokens"],
                      "reused_tokens": row.get("reused_tokens", 0), "seconds": wall}
            results.append(side, record)
            done[str(pair.id)] = record
            measured.append(wall)
    finally:
        if lm is not None:
            lm.close()
    preds, fallbacks = metrics.clean_predictions([done[i]["prediction"] for i in pairs["id"]])
    dataio.write_submission(pairs["id"], preds, out)
    all_seconds = [float(done[i]["seconds"]) for i in pairs["id"]]
    per_sample = sum(measured) / len(measured) if measured else sum(all_seconds) / len(all_seconds)
    summary = {"rows": len(pairs), "computed": len(measured), "resumed": len(pairs) - len(measured),
               "fallbacks": fallbacks, "errors": sum(isinstance(done[i]["error"], str) for i in pairs["id"]),
               "s_per_sample": per_sample, **projection(per_sample), "out": str(out),
               "strategy": strategy, "model": model_name}
    if dataio.PROMPT in pairs:
        summary["score"] = metrics.score(preds, pairs[dataio.PROMPT].tolist(),
                                         metrics.load_encoder(encoder or None))
    return summary


def report(summary: dict) -> str:
    """The summary as the lines main prints."""
    lines = [f"wrote {summary['out']}: {summary['rows']} predictions ({summary['computed']} computed "
             f"now, {summary['resumed']} resumed), {summary['fallbacks']} blank replaced by "
             f"{metrics.FALLBACK_PROMPT!r}, {summary['errors']} errors",
             f"{summary['s_per_sample']:.2f} s per sample on this machine; {summary['samples']} "
             f"samples: {summary['hours']:.2f} h of the {summary['budget_hours']:g} h budget "
             f"({'fits' if summary['fits'] else 'does NOT fit'})"]
    if "score" in summary:
        s = summary["score"]
        lines.append(f"SCS {s['scs_mean']:.4f} [95% CI {s['scs_ci_low']:.4f}, {s['scs_ci_high']:.4f}] "
                     f"over {s['n']} rows, encoder {s['encoder']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.submit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("test", help="CSV (or .jsonl) with id, original_text, rewritten_text "
                                     "[, rewrite_prompt]")
    parser.add_argument("--strategy", required=True, help=f"one of {', '.join(prompts.STRATEGIES)}")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalog name or path (model strategies)")
    parser.add_argument("--backend", default="llama_cpp", choices=loading.BACKENDS)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32, help="cap of the final answer")
    parser.add_argument("--max-text-tokens", type=int, default=384, help="longer texts are cut")
    parser.add_argument("--mean-prompt", default=None,
                        help="replaces the mean prompt of prompt_templates.yaml")
    parser.add_argument("--no-reuse-prefix", action="store_true",
                        help="prefill every prompt from scratch (llama.cpp)")
    parser.add_argument("--encoder", default=None, help="for the score: sentence-t5-base, "
                        "all-MiniLM-L6-v2 or a folder (default: sentence-t5-base if local)")
    parser.add_argument("--fresh", action="store_true", help="ignore rows finished earlier")
    parser.add_argument("--out", default="submission.csv")
    args = parser.parse_args(argv)
    try:
        summary = run(args.test, args.strategy, args.out, model=args.model, backend=args.backend,
                      n_threads=args.n_threads, max_new_tokens=args.max_new_tokens,
                      max_text_tokens=args.max_text_tokens, mean_prompt=args.mean_prompt,
                      reuse_prefix=not args.no_reuse_prefix, encoder=args.encoder, fresh=args.fresh)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished rows are kept in {sidecar(args.out)}; run the same "
              "command again to resume", file=sys.stderr)
        return 130
    print(report(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
