"""Make a submission: the competition's CSV in, `id,rewrite_prompt` out, resumable.

    python -m shared submit test.csv --strategy direct --model qwen2.5-coder-1.5b-instruct \
        --out submission.csv

Every input row gets a prediction, in input order; a blank or failed one becomes
metrics.FALLBACK_PROMPT and is counted. A row with nothing to read (its original_text or
rewritten_text empty, whitespace or JSON null) gets the fallback without a model call, counted and
named in the summary; a row of nothing but empty cells (the `,,` row an Excel export adds) is
skipped like a blank line. Each finished row is appended at once to a sidecar file
(`<out>.partial.jsonl`) under a key of id, a hash of the two texts, strategy, model, backend,
template hash and a hash of every setting that can change a prediction (SETTINGS: token caps,
batch size, device, ...), so a run that is interrupted (Ctrl-C, a killed job) resumes where it
stopped without redoing a row, and a run with other settings computes its own rows; rows that
failed or were cut by the deadline are computed again. `--fresh` ignores the sidecar. The
submission itself is written atomically at the end.

Kaggle-shaped runs: `--device auto` (CUDA when the backend sees a GPU, else the CPU, said in the
summary), `--batch-size N` (several pairs per model call, LoadedModel.generate_batch), and a
deadline guard (`--budget-hours`, `--expected-rows`, counted from the end of the model's load:
loading belongs to the margin shared/data/kaggle.yaml keeps for it): when the time left no
longer covers the next batch at the measured rate, the remaining rows get the fallback prompt,
counted.
`--backend vllm --batch-size 32` hands each batch to vLLM at once (a batch that fails runs
again one by one); without vLLM in this Python the command re-runs itself under the vLLM
environment's (shared.models.envs, `make setup VLLM=1`). `--shard i/n` computes only shard i of n
(round robin) for a run split over sessions or machines; `python -m shared shards` merges the
parts by id.

It prints the measured seconds per sample and samples per second, the projection for the hidden
test set's rows against the notebook's time limit (shared/data/kaggle.yaml; on this machine: a Kaggle GPU is another machine), and, when
the input has `rewrite_prompt`, the SCS with its 95% interval and the encoder that produced it.
A projection needs a measured row: when none was computed (all cut by the deadline, all blank)
the summary says so instead of "fits". A run in which every computed row failed exits 1.

Everything (file, strategy, model, backend, device, a chat strategy on a base model, a model
cache that cannot be written, an output folder that cannot be written, an output that is one of
the inputs) is checked before a model is loaded. A row or the submission that cannot be written
later (a full disk) stops the run with an error; every row already in the sidecar stays whole and
the same command resumes from them.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from shared import results
from shared.models import catalog, envs, loading
from shared.task import competition, dataio, metrics, prompts, shards
from shared.machine import REPO
from shared.errors import LabError

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
# The competition's facts, typed once in shared/data/kaggle.yaml with their sources
# (shared.task.competition): the hidden test set's rows, Kaggle's limit for the whole notebook, and the
# margin kept back for what runs before and after the rows (installing the wheelhouse, about
# 2 min; loading a 7B model from a Kaggle dataset, 5-10 min; the encoder; writing the file): a
# guess with room to spare, not a measurement on Kaggle.
SAMPLES = competition.facts().samples
BUDGET_HOURS = competition.facts().budget_hours
MARGIN_HOURS = competition.facts().margin_hours
DEADLINE_HOURS = competition.facts().deadline_hours
# The settings that change a prediction for a given pair, strategy and model: part of every
# sidecar row's key (settings_hash), so a resumed run never keeps answers made with other
# ones. reuse_prefix is among them: llama.cpp then attends over a KV cache whose size depends
# on the pair before, and Qwen2.5-Coder-1.5B's few-shot answers to 2 of 12 held-out pairs of
# validation_qwen differed between two runs with the same 295 reused tokens (text_cut.jsonl at
# 384 tokens against prompt_engineering.jsonl). n_threads and n_ctx are not: they change speed
# and which prompts fit, not the answer a prompt gets.
SETTINGS = ("max_new_tokens", "max_text_tokens", "batch_size", "reuse_prefix", "device",
            "n_gpu_layers", "device_map", "dtype", "quantization")


def sidecar(out: str | os.PathLike) -> Path:
    """Where the finished rows of a submission to `out` are kept while it runs."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


def pair_hash(pair) -> str:
    """8 hex characters of sha1 over a row's two texts: a resumed row must be the same pair."""
    text = f"{pair.original_text}\x00{pair.rewritten_text}"
    return hashlib.sha1(text.encode()).hexdigest()[:8]


settings_hash = results.settings_hash  # 8 hex characters over the settings that change a prediction (SETTINGS)


def row_key(row: dict) -> tuple:
    """What makes a finished row reusable: the same pair, strategy, model, backend, template
    and settings (settings_hash)."""
    return (str(row["id"]), row.get("pair_hash"), row["strategy"], row["model"], row["backend"],
            row["template_hash"], row.get("settings_hash"))


def reusable(row: dict) -> bool:
    """A sidecar row that counts as done: it has a prediction, no error, and was not cut by the
    deadline (those rows are computed again when there is time)."""
    error = row.get("error")
    return not (isinstance(error, str) and error) and not isinstance(row.get("skipped"), str)


def projection(seconds_per_sample: float | None, samples: int = SAMPLES,
               budget_hours: float = BUDGET_HOURS) -> dict:
    """Hours for `samples` at the measured rate, and whether they fit the budget; hours and fits
    are None when there is no rate (no row was computed)."""
    if seconds_per_sample is None:
        return {"samples": samples, "hours": None, "budget_hours": budget_hours, "fits": None}
    hours = seconds_per_sample * samples / 3600
    return {"samples": samples, "hours": hours, "budget_hours": budget_hours,
            "fits": hours <= budget_hours}


def blank_input(pair) -> bool:
    """A row with nothing to read: its original or rewritten text is empty (read_pairs(blanks=True)
    gives an empty, whitespace or null cell as "")."""
    return not pair.original_text.strip() or not pair.rewritten_text.strip()


def check(args) -> None:
    """Every LabError the arguments can cause, before any model is loaded: `args.test` is the
    input file, which --out and its sidecar must not be."""
    prompts.check_strategy(args.strategy)
    inputs = [args.test]
    if prompts.needs_model(args.strategy):
        spec = catalog.get(args.model)
        loading.check(spec, args.backend, "none")
        prompts.check_chat(args.strategy, spec.chat_template, spec.name)  # a base model
        weights = catalog.resolve(spec)  # the weights are here and intact (sha256); assembled into the cache
        inputs.append(weights)
        if spec.format == "gguf" and args.backend != "llama_cpp":  # converted into the cache on first load
            from shared.models import hf
            folder = hf.gguf_cache_folder(spec, Path(weights))
            if not (folder / "config.json").exists():
                catalog.writable_cache(folder.parent)
    dataio.check_output(args.out, inputs=inputs, also=[sidecar(args.out)])
    if args.max_new_tokens < 1 or args.max_text_tokens < 1:
        raise LabError("--max-new-tokens and --max-text-tokens must be at least 1")
    if args.batch_size < 1:
        raise LabError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.batch_size > 1 and prompts.needs_model(args.strategy) and args.backend not in loading.BATCHES:
        raise LabError(f"--batch-size {args.batch_size} with --backend {args.backend}: {args.backend} answers one "
                       "prompt at a time, so a batch would only run its pairs one after another, with prefix "
                       "reuse off; use --batch-size 1 (the default, prefix reuse on), or a backend that batches: "
                       + "; ".join(f"{k} {v}" for k, v in loading.BATCHES.items()))
    if not args.budget_hours > 0:
        raise LabError(f"--budget-hours must be more than 0, got {args.budget_hours}")
    if args.expected_rows is not None and args.expected_rows < 1:
        raise LabError(f"--expected-rows must be at least 1, got {args.expected_rows}")
    if args.mean_prompt is not None and not args.mean_prompt.strip():
        raise LabError("--mean-prompt must not be blank")
    if args.device not in loading.DEVICES:
        raise LabError(f"--device must be one of {', '.join(loading.DEVICES)}, got {args.device!r}")


def run(test: str | os.PathLike, strategy: str, out: str | os.PathLike,
        model: str = DEFAULT_MODEL, backend: str = "llama_cpp", n_threads: int | None = None,
        max_new_tokens: int = 32, max_text_tokens: int = 384, mean_prompt: str | None = None,
        reuse_prefix: bool = True, encoder: str | None = None, fresh: bool = False,
        device: str = "auto", batch_size: int = 1, budget_hours: float = DEADLINE_HOURS,
        expected_rows: int | None = None, shard: str | None = None, progress: bool = True,
        _recover=None) -> dict:
    """Write the submission for `test` to `out`; returns a summary (also printed by main).

    device: auto | cpu | cuda (loading.resolve_device). batch_size: pairs per model call
    (prompts.recover_batch; 1 runs prompts.recover, which reuses llama.cpp's prefix). The
    deadline: this file's share of `budget_hours` (hours) is budget_hours x rows / expected_rows
    (default max(SAMPLES, rows): on Kaggle's hidden set the whole budget), counted from the end
    of the model's load (loading is in the margin kept out of DEADLINE_HOURS); when the time left is less than the next batch takes at the measured rate,
    every remaining row gets the fallback prompt (`skipped: "deadline"`). A row with nothing to
    read (blank_input) gets it without a model call, counted (`blank_inputs`, ids in `blank_ids`).
    shard: "i/n", only the rows of shard i of n (shared.task.shards: round robin), each shard in its
    own session with the whole budget (expected_rows defaults to the shard's rows); merge the
    parts with `python -m shared shards`.
    `_recover` replaces prompts.recover (tests use it to interrupt a run at a chosen row).
    """
    args = argparse.Namespace(test=test, strategy=strategy, model=model, backend=backend, out=out,
                              max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens,
                              mean_prompt=mean_prompt, device=device, batch_size=batch_size,
                              budget_hours=budget_hours, expected_rows=expected_rows)
    shards.parse(shard)  # a malformed --shard fails before the file is read
    pairs = shards.select(dataio.read_pairs(test, blanks=True), shard)  # a blank text: the fallback
    if shard is not None and expected_rows is None:
        expected_rows = args.expected_rows = len(pairs)
    check(args)
    uses_model = prompts.needs_model(strategy)
    model_name = model if uses_model else "none"
    backend_name = backend if uses_model else "none"
    settings, opts, device_note = {}, {}, "no model"
    if uses_model:
        resolved, device_note = loading.resolve_device(backend, device)  # cuda without a GPU fails here
        opts = loading.device_options(backend, resolved, n_threads)
        reuse_prefix = reuse_prefix and backend == "llama_cpp" and batch_size == 1  # where it applies
        settings = {"max_new_tokens": max_new_tokens, "max_text_tokens": max_text_tokens,
                    "batch_size": batch_size, "reuse_prefix": reuse_prefix, "device": resolved,
                    "quantization": "none",
                    **{k: opts[k] for k in ("n_gpu_layers", "device_map", "dtype") if k in opts}}
        assert set(settings) <= set(SETTINGS), "a setting that changes answers is missing from SETTINGS"
    base = {"strategy": strategy, "model": model_name, "backend": backend_name,
            "template_hash": prompts.template_hash(strategy, mean_prompt),
            "settings_hash": settings_hash(settings), **settings,
            "device_requested": device if uses_model else None}
    side = sidecar(out)
    if fresh:
        side.unlink(missing_ok=True)
    wanted = {row_key({**base, "id": p.id, "pair_hash": pair_hash(p)}): p.id
              for p in pairs.itertuples(index=False)}
    done = {}
    for row in results.read(side).to_dict("records"):
        if row_key(row) in wanted and reusable(row):
            done[str(row["id"])] = row
    blank = [p for p in pairs.itertuples(index=False) if blank_input(p)]
    for pair in blank:  # nothing to read: the fallback, no model call, nothing to keep in the sidecar
        done[str(pair.id)] = {"prediction": "", "error": None, "skipped": "blank", "seconds": 0.0}
    todo = [p for p in pairs.itertuples(index=False) if p.id not in done]
    resumed = len(pairs) - len(todo) - len(blank)
    expected = max(expected_rows or SAMPLES, len(pairs))
    allowance_s = budget_hours * 3600 * len(pairs) / expected
    print(f"{len(pairs)} rows in {test}; {resumed} already done in {side}, "
          + (f"{len(blank)} with nothing to read (the fallback), " if blank else "")
          + f"{len(todo)} to do; strategy {strategy} ({base['template_hash']}), model {model_name}; "
          f"{device_note}; batch size {batch_size}; deadline {allowance_s:.0f} s for these rows "
          f"({budget_hours:g} h x {len(pairs)}/{expected} rows) from the end of the model's load")
    recover = _recover or prompts.recover
    lm = None
    measured, skipped = [], []
    loop_s = 0.0
    try:
        if todo and uses_model:
            lm = loading.load(model, backend, **opts)
            prompts.check_chat(strategy, lm.has_chat_template, lm.name)  # a path model, now known
        loop_start = time.perf_counter()  # the deadline counts from here: the load is in the margin
        bar = tqdm(total=len(todo), desc=f"submit {strategy}", disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            elapsed = time.perf_counter() - loop_start
            rate = sum(measured) / len(measured) if measured else 0.0
            if elapsed + rate * len(chunk) > allowance_s:  # the next batch would run past it
                skipped = todo[start:]
                for pair in skipped:
                    record = {**base, "id": pair.id, "pair_hash": pair_hash(pair), "prediction": "",
                              "raw_output": "", "error": None, "skipped": "deadline",
                              "model_calls": 0, "output_tokens": 0, "reused_tokens": 0, "seconds": 0.0}
                    _keep(side, record, measured)
                    done[str(pair.id)] = record
                break
            t0 = time.perf_counter()
            rows = _recover_chunk(lm, strategy, chunk, recover, batch_size, max_new_tokens,
                                  max_text_tokens, mean_prompt, reuse_prefix)
            wall = (time.perf_counter() - t0) / len(chunk)
            for pair, row in zip(chunk, rows):
                record = {**base, "id": pair.id, "pair_hash": pair_hash(pair),
                          "prediction": row["prediction"],
                          "raw_output": row["raw_output"], "error": row["error"],
                          "model_calls": row["model_calls"], "output_tokens": row["output_tokens"],
                          "reused_tokens": row.get("reused_tokens", 0), "seconds": wall,
                          "batched": row.get("batch_size", 1) > 1}
                _keep(side, record, measured)
                done[str(pair.id)] = record
                measured.append(wall)
            bar.update(len(chunk))
        bar.close()
        loop_s = time.perf_counter() - loop_start
    finally:
        if lm is not None:
            lm.close()
    preds, fallbacks = metrics.clean_predictions([done[i]["prediction"] for i in pairs["id"]])
    try:
        dataio.write_submission(pairs["id"], preds, out)
    except LabError as e:
        raise LabError(f"{e}; every computed row is kept in {side}: fix that and run the same "
                       "command again, it writes the submission from them") from e
    all_seconds = [float(done[i]["seconds"]) for i in pairs["id"]
                   if not isinstance(done[i].get("skipped"), str)]  # NaN in rows read back
    per_sample = (sum(measured) / len(measured) if measured else
                  sum(all_seconds) / len(all_seconds) if all_seconds else None)  # None: no row ran
    errors = [done[i]["error"] for i in pairs["id"] if isinstance(done[i]["error"], str)]
    summary = {"rows": len(pairs), "computed": len(measured), "resumed": resumed,
               "fallbacks": fallbacks, "blank_inputs": len(blank), "blank_ids": [str(p.id) for p in blank],
               "errors": len(errors), "deadline_fallbacks": len(skipped),
               "deadline_s": allowance_s, "expected_rows": expected,
               "s_per_sample": per_sample,
               "samples_per_s": len(measured) / loop_s if measured and loop_s > 0 else None,
               **projection(per_sample), "out": str(out), "strategy": strategy, "model": model_name,
               "backend": backend_name, "device": settings.get("device", "none"),
               "device_note": device_note, "batch_size": batch_size, "reuse_prefix": reuse_prefix,
               "max_new_tokens": max_new_tokens, "max_text_tokens": max_text_tokens,
               "test": Path(test).name,
               **{k: settings[k] for k in ("n_gpu_layers", "device_map", "dtype") if k in settings}}
    computed_errors = [done[str(p.id)]["error"] for p in todo if str(p.id) in done
                       and isinstance(done[str(p.id)]["error"], str)]
    if measured and len(computed_errors) == len(measured):
        summary["failed"] = f"every one of the {len(measured)} computed rows failed; the first: {computed_errors[0]}"
    if dataio.PROMPT in pairs and importlib.util.find_spec("sentence_transformers") is None:
        summary["score_note"] = ("no score: sentence-transformers is not installed (a wheelhouse "
                                 "made without WHEELHOUSE_EXTRAS=transformers)")
    elif dataio.PROMPT in pairs:
        truth = pairs[dataio.PROMPT].tolist()
        scored = [k for k, t in enumerate(truth) if t.strip()]  # a blank rewrite_prompt scores nothing
        if len(scored) < len(truth):
            summary["score_note"] = (f"{len(truth) - len(scored)} rows without a rewrite_prompt "
                                     f"are not scored")
        if scored:
            summary["score"] = metrics.score([preds[k] for k in scored], [truth[k] for k in scored],
                                             metrics.load_encoder(encoder or None))
    return summary


def _keep(side: Path, record: dict, measured: list) -> None:
    """Append a finished row to the sidecar; a write that fails (a full disk) stops the run with
    a LabError saying that the rows before it are kept and how to resume."""
    try:
        results.append(side, record)
    except results.TableWriteError as e:
        raise LabError(f"stopped: {e}. The {len(measured)} rows this run computed before it are "
                       "kept there: the same command resumes from them") from e


def _recover_chunk(lm, strategy, chunk, recover, batch_size, max_new_tokens, max_text_tokens,
                   mean_prompt, reuse_prefix) -> list[dict]:
    """Rows for a chunk of pairs: one by one (recover) at batch size 1, else recover_batch; a
    batch that fails as a whole runs again one by one (a LabError, bad input, is raised)."""
    kw = dict(max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens, mean_prompt=mean_prompt)
    one = functools.partial(recover, reuse_prefix=reuse_prefix and lm is not None and lm.backend == "llama_cpp", **kw)
    if batch_size > 1 and len(chunk) > 1:
        try:
            return prompts.recover_batch(lm, strategy, [(p.original_text, p.rewritten_text) for p in chunk], **kw)
        except LabError:
            raise
        except Exception as e:  # noqa: BLE001 - the pairs are tried alone below
            print(f"a batch of {len(chunk)} failed ({type(e).__name__}: {e}); running it one by one",
                  file=sys.stderr)
    return [one(lm, strategy, p.original_text, p.rewritten_text) for p in chunk]


def record(summary: dict, results_dir: str | os.PathLike) -> Path:
    """Append the summary, flat (the score's fields as score_*), with the machine to
    <results_dir>/submissions.jsonl; returns that path."""
    from shared import machine
    flat = {k: v for k, v in summary.items() if k != "score"}
    flat.update({f"score_{k}": v for k, v in summary.get("score", {}).items()})
    path = Path(results_dir) / "submissions.jsonl"
    results.append(path, {**flat, **machine.info()}, run_id=results.new_run_id())
    return path


def report(summary: dict) -> str:
    """The summary as the lines main prints."""
    rate = summary.get("samples_per_s")
    lines = [f"wrote {summary['out']}: {summary['rows']} predictions ({summary['computed']} computed "
             f"now, {summary['resumed']} resumed), {summary['fallbacks']} blank replaced by "
             f"{metrics.FALLBACK_PROMPT!r}, {summary['errors']} errors",
             f"{summary['model']} ({summary['backend']}) on {summary['device']} "
             f"({summary['device_note']}), batch size {summary['batch_size']}"
             + "".join(f", {k} {summary[k]}" for k in ("n_gpu_layers", "device_map", "dtype")
                       if summary.get(k) is not None),
             (f"{summary['s_per_sample']:.2f} s per sample"
              + (f" ({rate:.2f} samples/s)" if rate else "") + f" on this machine; {summary['samples']} "
              f"samples: {summary['hours']:.2f} h of the {summary['budget_hours']:g} h budget "
              f"({'fits' if summary['fits'] else 'does NOT fit'})" if summary["hours"] is not None else
              f"no row was computed, so no time per sample and no projection for "
              f"{summary['samples']} samples against the {summary['budget_hours']:g} h budget")]
    if summary.get("blank_inputs"):
        ids = summary["blank_ids"]
        lines.append(f"BLANK: {summary['blank_inputs']} rows had nothing to read (an empty original_text "
                     f"or rewritten_text) and got {metrics.FALLBACK_PROMPT!r}: id "
                     + ", ".join(map(repr, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else ""))
    if summary.get("deadline_fallbacks"):
        lines.append(f"DEADLINE: {summary['deadline_fallbacks']} rows got {metrics.FALLBACK_PROMPT!r} "
                     f"because the time left ({summary['deadline_s']:.0f} s for these rows) could not "
                     f"cover them at the measured rate; run again to compute them")
    if summary.get("failed"):
        lines.append(f"FAILED: {summary['failed']}")
    if summary.get("score_note"):
        lines.append(summary["score_note"])
    if "score" in summary:
        s = summary["score"]
        lines.append(f"SCS {s['scs_mean']:.4f} [95% CI {s['scs_ci_low']:.4f}, {s['scs_ci_high']:.4f}] "
                     f"over {s['n']} rows, encoder {s['encoder']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared submit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("test", help="CSV (or .jsonl) with id, original_text, rewritten_text "
                                     "[, rewrite_prompt]")
    parser.add_argument("--strategy", required=True, help="a strategy of shared/data/prompt_templates.yaml "
                        f"({', '.join(prompts.STRATEGIES)}, or an ensemble)")
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
    parser.add_argument("--device", default="auto", choices=loading.DEVICES,
                        help="auto: CUDA when the backend sees a GPU, else the CPU")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="pairs per model call (transformers decodes them together)")
    parser.add_argument("--budget-hours", type=float, default=DEADLINE_HOURS,
                        help=f"time for the rows (default {BUDGET_HOURS:g} h less {MARGIN_HOURS:g} h "
                             "for installing and loading); past it the rest get the fallback prompt")
    parser.add_argument("--expected-rows", type=int, default=None,
                        help=f"rows the budget is for (default {SAMPLES}, or the file's when more)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="only shard I of N (round robin); merge: python -m shared shards")
    parser.add_argument("--out", default="submission.csv")
    parser.add_argument("--results-dir", default=None, metavar="DIR",
                        help="append the run's summary (settings, SCS, seconds a sample, machine) to "
                             "DIR/submissions.jsonl, a row the iteration's report shows")
    args = parser.parse_args(argv)
    if args.backend == "vllm" and not envs.importable("vllm"):
        return _in_vllm_env(sys.argv[1:] if argv is None else list(argv))
    try:
        summary = run(args.test, args.strategy, args.out, model=args.model, backend=args.backend,
                      n_threads=args.n_threads, max_new_tokens=args.max_new_tokens,
                      max_text_tokens=args.max_text_tokens, mean_prompt=args.mean_prompt,
                      reuse_prefix=not args.no_reuse_prefix, encoder=args.encoder, fresh=args.fresh,
                      device=args.device, batch_size=args.batch_size, budget_hours=args.budget_hours,
                      expected_rows=args.expected_rows, shard=args.shard)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished rows are kept in {sidecar(args.out)}; run the same "
              "command again to resume", file=sys.stderr)
        return 130
    print(report(summary))
    if args.results_dir:
        print(f"recorded in {record(summary, args.results_dir)}")
    return 1 if summary.get("failed") else 0


def _in_vllm_env(argv: list[str]) -> int:
    """Run this command again under the vLLM environment's Python (shared.models.envs), with this
    repository's shared/ first on its path; its exit code. 2 with the install hint without it."""
    try:
        python = envs.python_for("vllm")
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    print(f"backend vllm: running in {python}", file=sys.stderr)
    return subprocess.call([python, "-m", "shared.task.submit", *argv], env=env)


if __name__ == "__main__":
    sys.exit(main())
