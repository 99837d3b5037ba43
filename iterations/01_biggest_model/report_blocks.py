"""The generated blocks of this iteration's README.md, each made from the results on disk.

`python -m shared report iterations/01_biggest_model` rewrites them; a test fails when they
differ from what the results produce.
"""
from shared import results
from shared.report import tables, reproduction
from shared.task import competition, metrics
from shared.machine import REPO, machine_label
from shared.report.report import iteration_module

answer = iteration_module(REPO / "iterations" / "01_biggest_model", "answer")   # Iteration 1's answer tables

RESULTS = REPO / "res" / "01_biggest_model"


def _table(name: str):
    return results.read(RESULTS / f"{name}.jsonl")


def _short_machines(table):
    """`table` with its machine column in short labels ("AMD EPYC 2c", "Xeon 2c", "T4")."""
    return table.assign(machine=table["machine"].map(machine_label)) if "machine" in table else table


def _source(name: str, notebook: str, df) -> str:
    if df.empty:
        return f"_No rows in `res/01_biggest_model/{name}.jsonl` yet: run `{notebook}`._"
    machines = ", ".join(sorted(df["machine"].dropna().unique()))
    dates = df["timestamp"].dropna().str.slice(0, 10)
    return (f"_From `res/01_biggest_model/{name}.jsonl`: {len(df)} rows, "
            f"{df['run_id'].nunique() if 'run_id' in df else 1} "
            f"run(s), {dates.min()} to {dates.max()}, on {machines}; made by `{notebook}`._")


def speed_decode() -> str:
    df = _table("speed")
    return (tables.markdown(tables.speed_table(df, "decode_tok_s"), index=True) + "\n\n"
            + _source("speed", "speed.ipynb", df))


def speed_prefill() -> str:
    df = _table("speed")
    if df.empty:
        return _source("speed", "speed.ipynb", df)
    n = int(results.ok_timed(df)["input_tokens"].median())
    return (f"Prefill seconds (time to first token) for a typical input of about {n} tokens:\n\n"
            + tables.markdown(tables.speed_table(df, "prefill_s"), index=True))


def speed_ratios() -> str:
    df = _table("speed")
    out = []
    for metric in ("decode_tok_s", "prefill_s"):
        ratios = tables.speedup(df, "transformers fp32", metric)
        if not ratios.empty:
            out.append(f"`{metric}` of each runtime / transformers fp32 (median):\n\n"
                       + tables.markdown(_short_machines(ratios.dropna(axis=0, thresh=3)), floatfmt=".2f"))
    return "\n\n".join(out) or _source("speed", "speed.ipynb", df)


def speed_failures() -> str:
    fails = tables.failures(_table("speed"))
    return "No configuration failed." if fails.empty else tables.markdown(_short_machines(fails))


def budget_verdict() -> str:
    df = _table("speed")
    ok = results.ok_timed(df)
    if ok.empty:
        return _source("speed", "speed.ipynb", df)
    last = ok.iloc[-1]
    v = tables.verdict(df, last["budget_hours"], int(last["samples"]), int(last["target_output_tokens"]))
    head = (f"Budget: {last['budget_hours']:g} h for {int(last['samples'])} samples = "
            f"**{v.attrs['budget_s']:.1f} s per sample**; wanted output: "
            f"{v.attrs['output_tokens']} tokens.\n\n")
    cols = ["model", "runtime", "machine", "input_tokens", "prefill_s", "decode_tok_s",
            "s_per_sample", "max_output_tokens", "fits"]
    return head + tables.markdown(_short_machines(v[cols].sort_values(["machine", "model", "runtime"])))


def scaling_fits() -> str:
    df = _table("length_scaling")
    fits = tables.scaling_fits(df)
    return tables.markdown(fits, floatfmt=".4g") + "\n\n" + _source("length_scaling", "length_scaling.ipynb", df)


def eos_comparison() -> str:
    df = _table("eos")
    return (tables.markdown(_short_machines(tables.eos_summary(df)), floatfmt=".3g") + "\n\n"
            + _source("eos", "eos.ipynb", df))


def _cpu_params(notebook: str) -> dict:
    import yaml
    return yaml.safe_load((REPO / "iterations" / "01_biggest_model" / "params" / "cpu.yaml").read_text())[notebook]


def validation_set() -> str:
    name = _cpu_params("make_validation_set")["set_name"]
    df = _table(name)
    if df.empty:
        return _source(name, "make_validation_set.ipynb", df)
    gen = ", ".join(sorted(df["generator"].unique()) + sorted(df["generator_runtime"].unique()))
    split = df.groupby("split").agg(pairs=("prompt", "size"), prompts=("prompt", "nunique"))
    words = df["original"].str.split().str.len()
    return (f"{len(df)} pairs over {df['genre'].nunique()} genres and {df['kind'].nunique()} kinds "
            f"of prompt ({', '.join(sorted(df['kind'].unique()))}), texts of {words.min()}-{words.max()} "
            f"words; rewritten by {gen}, greedy, at most {int(df['max_new_tokens'].max())} tokens "
            f"({int((df['stop_reason'] == 'length').sum())} rewrites hit that cap, "
            f"{int(df['error'].notna().sum())} failed); median {df['output_tokens'].median():.0f} "
            f"output tokens and {df['seconds'].median():.1f} s a rewrite. Split by prompt: "
            + ", ".join(f"{k} {int(r.pairs)} pairs ({int(r.prompts)} prompts)" for k, r in split.iterrows())
            + f". Also written as `res/01_biggest_model/{name}.csv` (the competition's columns).\n\n"
            + _source(name, "make_validation_set.ipynb", df))


def _held_out_rows(df, set_name: str):
    """This set's held-out rows, the latest run per (machine, model, strategy), each pair once."""
    if df.empty or "split" not in df:
        return df.iloc[0:0]
    ok = df[df["status"].eq("ok") & df["split"].eq("held_out") & df["validation_set"].eq(set_name)]
    latest = ok.groupby(["machine", "model", "strategy"])["run_id"].transform("last")
    ok = ok[ok["run_id"].eq(latest)]
    return ok.drop_duplicates(["machine", "model", "strategy", "pair"], keep="last")


def _verdict(g) -> str:
    """The best strategy by mean SCS and its paired difference (same pairs) with the others."""
    wide = g.pivot(index="pair", columns="strategy", values="scs").dropna()
    means = wide.mean().sort_values(ascending=False)
    best = means.index[0]
    parts = []
    for other in means.index[1:]:
        mean, low, high = metrics.mean_ci(wide[best] - wide[other])
        parts.append(f"{other} by {mean:+.3f} [{low:+.3f}, {high:+.3f}]")
    return (f"Best mean: **{best}** ({means.iloc[0]:.3f}); paired difference over the same "
            f"{len(wide)} pairs (95% CI), ahead of " + "; ".join(parts) + ".")


def _mean_prompt_lines(set_name: str) -> list[str]:
    """One paragraph per distinct mean-prompt search result on `set_name` (the latest search of
    each machine), naming the machines that found it: two machines that found the same prompt
    with the same scores give one paragraph, not the same paragraph twice."""
    searches = _table("mean_prompt")
    if searches.empty:
        return []
    latest = searches[searches["validation_set"].eq(set_name)].groupby("machine").tail(1)
    found: dict[str, list[str]] = {}
    for _, m in latest.iterrows():
        text = (f"found on the training split ({m['n_train']} pairs; "
                f"{'greedy' if m['beam_width'] == 1 else 'beam width %d' % m['beam_width']}"
                f" search, {m['steps']} of at most {m['max_steps']} steps, pool of {m['pool_size']} words "
                f"and phrases, seed {m['seed']}), SCS with **{m['encoder']}**: `{m['prompt']}`; "
                f"train SCS {m['train_scs']:.3f}, held-out SCS {m['held_out_scs']:.3f} "
                f"[{m['held_out_ci_low']:.3f}, {m['held_out_ci_high']:.3f}] (n = {m['n_held_out']})")
        found.setdefault(text, []).append(m["machine"])
    return [f"**Mean prompt** {text}; on {', '.join(machines)}." for text, machines in found.items()]


def prompt_strategies() -> str:
    name = _cpu_params("prompt_engineering")["validation_set"]
    df = _table("prompt_engineering")
    ok = _held_out_rows(df, name)
    if ok.empty:
        return _source("prompt_engineering", "prompt_engineering.ipynb", df)
    parts = _mean_prompt_lines(name)
    for (machine, model), g in ok.groupby(["machine", "model"]):
        runtime = ", ".join(sorted(set(g["runtime"].dropna()) - {"none"})) or "no model call"
        table = metrics.summarize(g)
        parts.append(f"**{model}** ({runtime}) on {machine}, held-out split of `{name}`, SCS with "
                     f"**{', '.join(sorted(g['encoder'].unique()))}**:\n\n"
                     + tables.markdown(table) + "\n\n" + _verdict(g))
    return "\n\n".join(parts) + "\n\n" + _source("prompt_engineering", "prompt_engineering.ipynb", df)


def _roofline_rows(table: str):
    """The latest run's rows of one table of roofline.jsonl (the roofline notebook's predictions)."""
    import pandas as pd
    df = _table("roofline")
    if df.empty:
        return df
    df = df[df["run_id"].eq(df["run_id"].iloc[-1]) & df["table"].eq(table)]
    return df.dropna(axis=1, how="all").reset_index(drop=True) if not df.empty else pd.DataFrame()


def text_cut_sweep() -> str:
    """The best strategy at each max_text_tokens (text_cut.jsonl), and the default the rows give."""
    name = _cpu_params("prompt_engineering")["validation_set"]
    df = _table("text_cut")
    ok = df[df["status"].eq("ok") & df["validation_set"].eq(name)] if not df.empty else df
    if ok.empty:
        return _source("text_cut", "prompt_engineering.ipynb", df)
    parts = []
    for (machine, model, strategy), g in ok.groupby(["machine", "model", "strategy"]):
        g = g[g["run_id"].eq(g["run_id"].iloc[-1])].drop_duplicates(["max_text_tokens", "pair"], keep="last")
        table = metrics.summarize(g, by="max_text_tokens").sort_values("max_text_tokens")
        parts.append(f"**{strategy}** with **{model}** on {machine}, held-out split of `{name}`, texts "
                     f"cut to `max_text_tokens` (SCS with **{', '.join(sorted(g['encoder'].unique()))}**; "
                     f"`truncated`: pairs with a text cut):\n\n"
                     + tables.markdown(table[["max_text_tokens", "scs_mean", "scs_ci95", "s_per_sample",
                                                "n", "truncated"]]) + "\n\n" + _text_cut_default(g))
    return "\n\n".join(parts) + "\n\n" + _source("text_cut", "prompt_engineering.ipynb", df)


# A cut must save at least this share of the uncut seconds to count as faster: the same
# configuration run twice on this shared 2-core machine differed by up to 8% in samples/s
# (submission_batches.jsonl, batch 8: 1.03 and 0.95), so a smaller saving is not the cut's.
MATERIAL_SAVING = 0.10


def _text_cut_default(g) -> str:
    """The rule: a cut loses text, so it is worth it only when it saves time. The default is the
    smallest value that is faster than the largest (paired 95% CI of seconds below 0, and the
    mean saving at least MATERIAL_SAVING of the uncut seconds) and not worse in SCS (paired 95%
    CI of the SCS difference reaching 0 or above); else the largest."""
    scs = g.pivot(index="pair", columns="max_text_tokens", values="scs").dropna()
    sec = g.pivot(index="pair", columns="max_text_tokens", values="seconds").dropna()
    full = max(scs.columns)
    notes, chosen = [], full
    for v in sorted(c for c in scs.columns if c != full):
        d_scs = metrics.mean_ci(scs[v] - scs[full])
        d_sec = metrics.mean_ci(sec[v] - sec[full])
        faster = d_sec[2] < 0 and -d_sec[0] >= MATERIAL_SAVING * sec[full].mean()
        not_worse = d_scs[2] >= 0
        notes.append(f"{v} against {full}: SCS {d_scs[0]:+.3f} [{d_scs[1]:+.3f}, {d_scs[2]:+.3f}], "
                     f"seconds {d_sec[0]:+.2f} [{d_sec[1]:+.2f}, {d_sec[2]:+.2f}]")
        if faster and not_worse and chosen == full:
            chosen = v
    why = (f"no shorter cut saved {MATERIAL_SAVING:.0%} of the time or more, so a cut would only lose text"
           if chosen == full else "the smallest cut that was faster and not worse")
    return ("Paired differences over the same pairs (95% CI): " + "; ".join(notes)
            + f". **Default the rows give: max_text_tokens = {chosen}** ({why}).")


def submission_batches() -> str:
    """Batch 1 against batch N of `shared.task.submit` (benchmarks/submit_batches.py)."""
    df = _table("submission_batches")
    if df.empty:
        return "_No rows in `res/01_biggest_model/submission_batches.jsonl` yet: run `benchmarks/submit_batches.py`._"
    parts = []
    for (machine, model, backend, strategy), g in df.groupby(["machine", "model", "backend", "strategy"]):
        g = g[g["run_id"].eq(g["run_id"].iloc[-1])]
        t = (g.groupby("batch_size").agg(samples_per_s=("samples_per_s", "median"),
                                         runs=("samples_per_s", "size"),
                                         samples_per_s_runs=("samples_per_s", lambda x: ", ".join(f"{v:.2f}" for v in x)),
                                         scs=("scs", "median"), same_as_batch_1=("same_as_batch_1", "min"),
                                         rows=("rows", "first")).reset_index())
        base = t.loc[t["batch_size"].eq(1), "samples_per_s"]
        if len(base):
            t["vs_batch_1"] = t["samples_per_s"] / base.iloc[0]
        parts.append(f"`shared.task.submit --strategy {strategy} --model {model} --backend {backend}` on "
                     f"{machine} ({int(g['max_new_tokens'].iloc[0])} new tokens at most, "
                     f"{int(g['n_threads'].iloc[0])} threads, runs alternating):\n\n"
                     + tables.markdown(t, floatfmt=".2f"))
    dates = df["timestamp"].dropna().str.slice(0, 10)
    return ("\n\n".join(parts) + f"\n\n_From `res/01_biggest_model/submission_batches.jsonl`: {len(df)} rows, "
            f"{dates.min()} to {dates.max()}; made by `benchmarks/submit_batches.py`._")


def _roofline_source() -> str:
    df = _table("roofline")
    if df.empty:
        return "_No rows in `res/01_biggest_model/roofline.jsonl` yet: run `roofline.ipynb`._"
    last = df[df["run_id"].eq(df["run_id"].iloc[-1])]
    return (f"_From `res/01_biggest_model/roofline.jsonl`, run {last['run_id'].iloc[0]} of {last['timestamp'].iloc[0][:10]} "
            f"on {last['machine'].iloc[0]} ({len(last)} rows), made by `roofline.ipynb` from the lab's rows, "
            "`shared/data/published_speeds.yaml` and the facts in `shared/data/hardware.yaml`, "
            "`shared/data/quantization.yaml`, `shared/data/models.yaml`._")


def _counts_as_int(df, *columns):
    """`df` with its count columns as integers: rows read back from roofline.jsonl next to rows of
    other tables come back as floats ("9.0"); a count is whole (a missing one stays empty)."""
    return df.assign(**{c: df[c].astype("Int64") for c in columns if c in df})


def roofline_accuracy() -> str:
    loo, held, cols = _roofline_rows("loo_summary"), _roofline_rows("held_out"), _roofline_rows("column_error")
    if loo.empty:
        return _roofline_source()
    keep = ["rows", "configs"] + [c for c in loo if c.endswith("_pct")]
    loo, held, cols = _counts_as_int(loo, "configs"), _counts_as_int(held, "configs", "predicted"), \
        _counts_as_int(cols, "configs", "prefill_rows")
    return (tables.markdown(loo[keep], floatfmt=".1f") + "\n\n"
            "Leave one configuration out (model x quantization x runtime x hardware). The published GPU rows "
            "are also held out a card at a time and a source at a time (batch-1 rows; `predicted`: rows that "
            "had a row of their runtime left to be predicted from):\n\n"
            + tables.markdown(held[["held out", "family", "configs", "predicted", "median_err_pct", "worst_err_pct"]],
                                floatfmt=".1f")
            + "\n\nThe error each column of the table below carries: only its runtime's rows on that card (the T4's "
            "for a 2xT4), each predicted with that row left out (`held_out_err_pct`, `worst_err_pct`) and with its "
            "whole source left out (`loso_err_pct`); a column with fewer than two rows of its own has no error and "
            "is a range from its generation's rows (`scope`); `configs`: the card's rows. Prefill: the generation's "
            "prompt-processing rows, one row out (`prefill_err_pct` of `prefill_rows`):\n\n"
            + tables.markdown(cols[[c for c in ["family", "hardware", "configs", "held_out_err_pct", "worst_err_pct",
                                                  "loso_err_pct", "scope", "prefill_rows", "prefill_err_pct"] if c in cols]],
                                floatfmt=".1f") + "\n\n" + _roofline_source())


def roofline_fast_enough() -> str:
    table = _roofline_rows("prediction")
    if table.empty:
        return _roofline_source()
    r0 = table.iloc[0]
    floor = float(r0.get("max_ppl_delta", 1.0))
    batch_text = ""
    if (table["batch_size"] > 1).any():
        both = answer.batched_table(table, "T4", ["mistral-7b-instruct-v0.2", "llama-2-13b-chat"],
                                        ["fp16", "bnb-4bit", "Q4_K_M"])
        batch_text = ("\n\nBatched decoding on one T4 (weights read once a step for the whole batch, KV per "
                      "sequence), per model call; calibrated by the published batched rows of the same runtime on the "
                      "card's generation where there are any, else `uncalibrated` with a range from no gain from "
                      "batching to the roofline ceiling. " + answer.BATCH_CAPTION + "\n\n"
                      + tables.markdown(both, floatfmt=".3g"))
    return (f"Each cell: ✓ fast enough / slow / uncalibrated (a range: the roofline ceiling to the runtime's worst "
            f"fit on any GPU) / range (a card with fewer than two rows of the runtime of its own: its generation's "
            f"rows, never a ✓) / ⚠ above ceiling (an implied bandwidth efficiency above the highest of any published "
            f"llama.cpp row: flagged, never a ✓); `(fit at bound)`: the efficiency was pinned at its bound of 1; "
            f"predicted decode tok/s, seconds a call of {int(r0['input_tokens'])} input + "
            f"{int(r0['output_tokens'])} output tokens (the median output of the lab's own prompt-recovery calls), "
            f"calls of that size that fit a sample's budget after the model is loaded once, memory margin a GPU "
            f"(visible capacity minus weights, KV for n_ctx {int(r0['n_ctx'])} and runtime buffers) and where the "
            f"weights come from: (file) a published GGUF size, (bpw est.) parameters x bits per weight, (params) "
            f"parameters x the dtype's bits; ✗ = does not fit. Budget {r0['budget_hours']:g} h / "
            f"{int(r0['samples'])} samples = {r0['budget_s']:.1f} s a sample. Batch 1. "
            + answer.load_summary(table) + " " + answer.weights_summary(table) + "\n\n"
            + tables.markdown(answer.fast_enough_grid(table))
            + "\n\nThe biggest candidate per GPU on a runtime calibrated on that card's generation, at 4 bits or more:\n\n"
            + answer.biggest_sentences(table)
            + f"\n\nAt the lowest bits whose published perplexity increase (llama.cpp's Llama-3-8B table) is at most "
            f"{floor:g}:\n\n" + answer.biggest_sentences(table, min_bits=0, max_ppl_delta=floor)
            + "\n\nWhich rows calibrated each runtime on each GPU, and the held-out error of that column:\n\n"
            + tables.markdown(answer.calibrations(table), floatfmt=".0f") + batch_text
            + "\n\n" + _roofline_source())


ANSWER_CARDS = ("P100", "T4", "2xT4")   # Kaggle's cards; the seed's "P4" stays in the seed check


def _num(x, fmt=".0f") -> str:
    return "?" if x is None or x != x else f"{x:{fmt}}"


def _answer_line(r, long, rows_of) -> dict:
    """One answer row of the headline table from a prediction row `r` (and its 3,500-token twin)."""
    interval = "" if r["decode_tok_s_lo"] == r["decode_tok_s_hi"] else \
        f" [{_num(r['decode_tok_s_lo'])}-{_num(r['decode_tok_s_hi'])}]"
    decode = (f"{_num(r['decode_tok_s'])}{interval}" if r["basis"] == "calibrated"
              else f"range {_num(r['decode_tok_s_lo'])}-{_num(r['decode_tok_s_hi'])}")
    scope, loso = rows_of(r)
    if r["decode_error_pct"] == r["decode_error_pct"] and r["decode_error_pct"] is not None:
        across = f", {loso:.0f}% with its source left out" if loso is not None else ""
        decode += f" (held-out error {r['decode_error_pct']:.0f}% one row out{across}; {scope})"
    else:
        decode += f" ({scope})"
    if r.get("decode_at_bound") is True:
        decode += ", fit at its bound"
    prefill = (f"{r['prefill_s']:.2f}" if r["prefill_s_hi"] <= r["prefill_s"] * 1.005
               else f"{r['prefill_s_lo']:.2f}-{r['prefill_s_hi']:.2f}")
    if long is None:
        at_long = "not predicted"
    elif long["fits_memory"] is False:
        at_long = f"does not fit ({long['memory_per_gpu_gb']:.1f} GB a GPU > {long['memory_available_gb']:.1f})"
    else:
        verdict = "fits" if long["fast_enough"] else "fits memory, too slow"
        at_long = (f"{verdict}, {long['calls_per_sample']:.0f} calls [{long['calls_lo']:.0f}-{long['calls_hi']:.0f}] "
                   f"(prefill {long['prefill_s_lo']:.1f}-{long['prefill_s_hi']:.1f} s)")
    return {"answer": f"**{r['model']}** {r['quantization']} ({r['family']}, {r['params_b']:g} B)",
            "decode tok/s": decode, "prefill s a call": prefill,
            "decode s a call": f"{r['decode_s']:.2f}" + ("" if r["basis"] == "calibrated" else f"-{r['decode_s_hi']:.2f}"),
            "calls a sample": (f"**{r['calls_per_sample']:.0f}** [{r['calls_lo']:.0f}-{r['calls_hi']:.0f}]"
                               if r["basis"] == "calibrated" else f"range {r['calls_lo']:.0f}-{r['calls_hi']:.0f}"),
            "largest n_ctx": _num(r["max_n_ctx"]),
            f"at {int(long['input_tokens']) if long is not None else 3500} input tokens": at_long}


def gpu_answer() -> str:
    """The headline: per Kaggle card (P100, T4, 2xT4) the biggest model at 4 bits or more and at
    the quantization floor, with decode tok/s and its interval, prefill and decode seconds of a
    call, calls a sample with its interval, the largest n_ctx, the same answer at the seed's long
    inputs, the 2xT4's other split, and the rows (sources, dates, builds) it rests on."""
    import pandas as pd
    table, long = _roofline_rows("prediction"), _roofline_rows("prediction_long")
    cols = _roofline_rows("column_error")
    if table.empty or "prefill_s_high" not in table or long.empty:
        return ("_The roofline rows predate calibrated prefill and the long workload: run `roofline.ipynb` "
                "(`python -m shared run iterations/01_biggest_model --only roofline`)._")
    table = table[table["hardware"].isin(ANSWER_CARDS + tuple(f"{c} row split" for c in ANSWER_CARDS))]
    r0 = table.iloc[0]
    floor = float(r0.get("max_ppl_delta", 1.0))
    key = ["model", "quantization", "hardware", "split"]
    long_by = {tuple(x[k] for k in key): x for x in long[long["batch_size"].eq(1)].to_dict("records")}

    def rows_of(r):
        """(the rows behind a cell's error, its error with the whole source left out or None)."""
        if r.get("split") == "row":
            return str(r["error_scope"]), None
        c = cols[(cols["family"] == r["family"]) & (cols["hardware"] == r["hardware"].replace(" row split", ""))]
        if c.empty:
            return str(r["error_scope"]), None
        loso = c["loso_err_pct"].iloc[0] if "loso_err_pct" in c else None
        return str(c["scope"].iloc[0]), (None if loso is None or loso != loso else float(loso))
    lines, evidence = [], {}
    for label, kw in ((">= 4 bits", {"min_bits": 4}), (f"floor (PPL +{floor:g})", {"min_bits": 0, "max_ppl_delta": floor})):
        for r in answer.answer(table, **kw).to_dict("records"):
            if r["hardware"] not in ANSWER_CARDS:
                continue
            if pd.isna(r.get("model")):
                lines.append({"card": r["hardware"], "which": label, "answer": "none fits on a calibrated runtime or range"})
                continue
            splits = [r]
            twin = table[(table["model"] == r["model"]) & (table["quantization"] == r["quantization"])
                         & (table["hardware"] == f"{r['hardware']} row split")]
            splits += [t | {"basis": "range"} for t in twin.to_dict("records")]
            for x in splits:
                split = "row split, uncalibrated" if x["split"] == "row" else (
                    "layer split" if x["hardware"] == "2xT4" else "one GPU")
                lines.append({"card": x["hardware"].replace(" row split", ""), "which": f"{label}, {split}"}
                             | _answer_line(x, long_by.get(tuple(x[k] for k in key)), rows_of))
                evidence[(x["family"], x["hardware"].replace(" row split", ""))] = (
                    f"decode: {x['decode_evidence']}; prefill: {x['prefill_evidence']}")
    head = (f"For a call of {int(r0['input_tokens'])} input + {int(r0['output_tokens'])} output tokens (the lab's median "
            f"answer), batch 1, {r0['budget_hours']:g} h / {int(r0['samples'])} samples = {r0['budget_s']:.1f} s a sample "
            "less one model load; seconds a call = calibrated prefill + calibrated decode, calls a sample from those "
            "(brackets: the slow and fast ends, a calibrated decode +- its column's held-out error, a range its two ends; "
            "prefill +- its generation's held-out error where it has one). `largest n_ctx`: the largest KV cache a "
            "sequence can allocate on the visible memory (capped at the model's trained context). A cell above the "
            f"plausibility ceiling (implied bandwidth efficiency > {table['efficiency_ceiling'].dropna().iloc[0]:.2f}, the "
            "highest of any published llama.cpp row) is never an answer. **Read the first line of each card** "
            "(`>= 4 bits`): that is the answer. `floor`: the lowest bits whose published perplexity increase "
            f"(llama.cpp's quantize table, Llama-3-8B) is at most {floor:g}, a smaller file of the same or a bigger "
            "model; `row split`: the 2xT4's other way to split the layers, uncalibrated. A card whose column is a "
            "range (fewer than two rows of its own) gets no point estimate: its calls a sample are the range.")
    ev = "\n".join(f"- {fam} on {card}: {text}" for (fam, card), text in evidence.items())
    return (head + "\n\n" + tables.markdown(pd.DataFrame(lines)) + "\n\nEvidence (source; date; build of the rows "
            "each answer rests on):\n\n" + ev + "\n\nWhat would change the answer:\n\n" + _what_would_change(table, cols)
            + "\n" + _long_inputs(table, long)
            + "\n\n" + _roofline_source())


def _what_would_change(table, cols) -> str:
    """One sentence a card, from the rows: which missing row would move its answer and how far."""
    def col(family, card, field):
        c = cols[(cols["family"] == family) & (cols["hardware"] == card)]
        return None if c.empty or c[field].iloc[0] != c[field].iloc[0] else c[field].iloc[0]
    out = []
    p100 = col("llama.cpp", "P100", "scope")
    out.append(f"- **P100**: its llama.cpp column is a {p100}: no public P100 llama-bench token-generation row was "
               "found, and the P100 (sm_60, no dp4a) runs other llama.cpp kernels than the P40 (sm_61); one P100 "
               "tg128 / pp512 row would turn the range into a calibrated answer.")
    loo, loso, n = col("llama.cpp", "T4", "held_out_err_pct"), col("llama.cpp", "T4", "loso_err_pct"), col("llama.cpp", "T4", "configs")
    out.append(f"- **T4**: the column rests on {_num(n)} T4 rows from one source, the seed's llama-cpp-python on Kaggle of "
               f"early 2024 (held-out error {_num(loo)}% one row out); predicted from the other Turing card's rows "
               f"instead (one source out) it misses them by {_num(loso)}%, so a T4 llama-bench row of a current "
               "llama.cpp build would say which era applies; its prefill rests on one RTX 2080 Ti prompt-processing row "
               "(a range), so a T4 pp512 row would narrow the calls a sample most.")
    row = table[table["hardware"].eq("2xT4 row split")]
    out.append("- **2xT4**: the answer assumes llama.cpp's default layer split (one T4's bandwidth at a time); a row "
               "split (`-sm row`, or tensor parallel in vLLM) is predicted on the row-split lines above, uncalibrated "
               f"({len(row)} cells, no public 2xT4 row-split row outside the held-out sources): a measured one decides "
               "whether the second card's bandwidth turns into speed over PCIe; at the seed's long inputs the answer "
               "holds only where the column `at ... input tokens` says it fits.")
    return "\n".join(out)


def _long_inputs(table, long) -> str:
    """One line a card whose answer does not survive the long workload (`prediction_long` rows):
    what it does there and the answer computed for that workload instead."""
    import pandas as pd
    short = answer.answer(table, min_bits=4).set_index("hardware")
    at_long = answer.answer(long, min_bits=4).set_index("hardware")
    n = int(long["input_tokens"].iloc[0])
    out = []
    for card in ANSWER_CARDS:
        if card not in short.index or pd.isna(short.loc[card].get("model")):
            continue
        a = short.loc[card]
        same = long[(long["hardware"] == card) & (long["model"] == a["model"]) & (long["quantization"] == a["quantization"])
                    & long["batch_size"].eq(1) & long["split"].fillna("layer").eq("layer")]
        if same.empty or bool(same["fast_enough"].iloc[0]):
            continue
        b = at_long.loc[card] if card in at_long.index else None
        if b is None or pd.isna(b.get("model")):
            instead = "no candidate is fast enough there"
        else:
            calls = (f"{b['calls_per_sample']:.0f} [{b['calls_lo']:.0f}-{b['calls_hi']:.0f}]" if b["basis"] == "calibrated"
                     else f"range {b['calls_lo']:.0f}-{b['calls_hi']:.0f}")
            instead = (f"the answer for inputs that long is {b['model']} {b['quantization']} ({b['family']}), "
                       f"calls a sample {calls}")
        x = same.iloc[0]
        out.append(f"- **{card} at the seed's long inputs** ({n} input tokens): {a['model']} {a['quantization']} fits, "
                   f"but one call's prefill alone ({x['prefill_s_lo']:.1f}-{x['prefill_s_hi']:.1f} s) leaves "
                   f"{x['calls_lo']:.0f}-{x['calls_hi']:.0f} calls within a sample's budget; {instead}.")
    return "\n".join(out)


def published_bnb_ratios() -> str:
    """The published batch-1 rows of each table that has an fp16 row (shared/data/published_speeds.yaml,
    rows kept for the fit), each row's decode tok/s as a ratio to that table's fp16 row: what the
    bitsandbytes formats cost against fp16 on a card, read from the rows, not typed."""
    import pandas as pd
    import yaml

    from shared.speed import calibration
    rows = pd.DataFrame(yaml.safe_load(calibration.PUBLISHED_FILE.read_text()))
    rows = rows[rows["batch_size"].fillna(1).eq(1) & rows["exclude"].isna()
                & rows["family"].isin(["transformers", "bitsandbytes"])]
    out = []
    for table, g in rows.groupby("table", sort=False):
        fp16 = g[g["quantization"].eq("fp16")]
        if fp16.empty or len(g) < 2:
            continue
        g = g.assign(ratio_to_fp16=g["decode_tok_s"] / fp16["decode_tok_s"].iloc[0])
        out.append(f"**{table}** ({g['source'].iloc[0].split(' (')[0]}), batch 1:\n\n"
                   + tables.markdown(g[["row", "quantization", "decode_tok_s", "ratio_to_fp16"]], floatfmt=".2f"))
    return "\n\n".join(out) or "_No published table with an fp16 row and a bitsandbytes row._"


def roofline_batch_check() -> str:
    rows = _roofline_rows("batch_check")
    if rows.empty:
        return _roofline_source()
    summary = (rows.groupby(["dataset", "hardware", "family", "batch_size"])["err_pct"]
               .agg(["count", "median", "max"]).reset_index()
               .rename(columns={"count": "rows", "median": "median_err_pct", "max": "worst_err_pct"}))
    lab = rows[rows["dataset"] == "lab"]
    cols = ["hardware", "model", "quantization", "batch_size", "measured_tok_s", "predicted_tok_s",
            "measured_throughput", "predicted_throughput", "err_pct"]
    return ("Batched rows predicted by the batch-1 calibration of the same runtime and card (weights read once "
            "a step for the batch, KV per sequence), per sequence; this lab's CPU rows first:\n\n"
            + tables.markdown(lab[cols], floatfmt=".3g") + "\n\nAll batched rows, by card and runtime:\n\n"
            + tables.markdown(summary, floatfmt=".0f") + "\n\n" + _roofline_source())


def roofline_cpu_ladder() -> str:
    ladder = _roofline_rows("cpu_ladder")
    if ladder.empty:
        return "_This machine's ladder is not in `roofline.jsonl`: run `roofline.ipynb`._"
    r0 = ladder.iloc[0]
    cols = ["model", "quantization", "source", "decode_tok_s", "loo_predicted_tok_s", "loo_err_pct", "prefill_s",
            "s_per_sample", "max_output_tokens", "memory_gb", "fast_enough"]
    return (f"On {machine_label(r0['machine'])}, a call of {int(r0['input_tokens'])} + {int(r0['output_tokens'])} "
            "tokens (the lab's median answer, as in the GPU table; the speed section's budget verdict asks "
            "for 100 output tokens, so a row can fit here and not there). Measured rows: decode tok/s from the "
            "rows at the input length nearest the call's (as the speed table's), prefill scaled linearly from "
            "that input length, and the leave-one-out prediction beside them (`loo_err_pct`: its error); predicted "
            "rows are marked, their `loo_err_pct` is the median leave-one-out error of their runtime here.\n\n"
            + tables.markdown(ladder[[c for c in cols if c in ladder]], floatfmt=".3g"))


def roofline_seed_check() -> str:
    verdicts = _roofline_rows("seed_verdict")
    if verdicts.empty:
        return _roofline_source()
    lines = []
    for column, g in verdicts.groupby("column", sort=False):
        sup = ", ".join(g.loc[g["supported"].astype(bool), "hypothesis"]) or "none"
        ruled = [f"{r['hypothesis']} ({int(r['no_fit'])} of {int(r['cells'])} models do not fit, highest implied "
                 f"efficiency {r['max_implied_eff']:.2f})" for _, r in g.iterrows() if r["plausible"] < r["cells"]]
        weighed = ", ".join(g.loc[g["with_labels"].astype(bool), "hypothesis"]) if "with_labels" in g else ""
        lines.append(f"- **{column}**: physics and the calibrated runtime: consistent with {sup}"
                     + (f"; ruled out: {'; '.join(ruled)}" if ruled else "")
                     + (f". With the seed's labels (a Kaggle card, the GPU count the label names): **{weighed or 'none'}**"
                        if "with_labels" in g else "") + ".")
    cols = ["column", "hypothesis", "cells", "plausible", "no_fit", "max_implied_eff", "median_factor_off", "supported",
            "kaggle_card", "label_gpu_count_agrees", "with_labels"]
    cols = [c for c in cols if c in verdicts]
    return (f"Implied efficiency = seed tok/s x bytes per token / bandwidth; a cell is plausible when the model fits "
            f"the GPU's memory and the efficiency is at most {verdicts['efficiency_ceiling'].iloc[0]:.2f}, the highest of "
            "any published llama.cpp row. `median_factor_off`: how far the prediction calibrated on the column's own "
            "runtime (llama.cpp or bitsandbytes) is from the seed's numbers (a factor, 1 = equal).\n\n"
            + tables.markdown(verdicts[cols], floatfmt=".2f") + "\n\n" + "\n".join(lines)
            + "\n\n_Per cell: `calibration.seed_check` (in `roofline.ipynb`); the seed's numbers are in "
            "`shared/data/seed_speeds.yaml` with their source._")


def speed_memory() -> str:
    df = _table("speed")
    table = tables.memory_table(df)
    if table.empty:
        return "_No rows with the memory-footprint fields yet: run `speed.ipynb` (`make run REDO=1`)._"
    return (tables.markdown(table.assign(machine=table["machine"].map(machine_label)),
                              floatfmt=".0f") + "\n\n" + _source("speed", "speed.ipynb", df))


def batch_throughput() -> str:
    df = _table("batch")
    table = tables.batch_table(df)
    if table.empty:
        return _source("batch", "speed.ipynb with PARAMS=cpu_full (batch_sizes)", df)
    return tables.markdown(table, floatfmt=".3g") + "\n\n" + _source("batch", "speed.ipynb", df)


def batch_verdict() -> str:
    """Per model and machine: vLLM's largest batch against llama.cpp's batch 1, and its start-up
    (which includes the one-time GGUF conversion when the row says it converted: from_cache false)."""
    df = _table("batch")
    table = tables.batch_table(df)
    if table.empty:
        return _source("batch", "speed.ipynb with PARAMS=cpu_full (batch_sizes)", df)
    ok = results.ok_timed(df)
    conv = ok[ok["backend"].eq("vllm") & ok["from_cache"].eq(False)] if "from_cache" in ok else ok.iloc[:0]
    converted = set(zip(conv["model"], conv["machine"].map(machine_label)))  # per model and machine
    ratio = [c for c in table if c.startswith("largest batch")][0]
    lines = []
    for _, r in table[table["runtime"].str.startswith("vLLM")].iterrows():
        sizes = [c for c in table if c.startswith("samples/s b") and r[c] == r[c]]
        if not sizes:
            continue
        top = sizes[-1]
        lines.append(f"- {r['model']} on {r['machine']} ({r['input_tokens']:.0f} input + "
                     f"{r['max_new_tokens']:.0f} new tokens): {r['runtime']} batch {top.split(' b')[-1]} "
                     f"{r[top]:.3g} samples/s, **{r[ratio]:.2f}x** llama.cpp's batch 1; engine "
                     f"start-up {r['start-up s']:.0f} s"
                     + (" (including the one-time GGUF conversion to its cache)" if (r["model"], r["machine"]) in converted else "")
                     + ".")
    return "\n".join(lines) or "_No vLLM batch rows yet._"


def submissions() -> str:
    """Whole submissions of a CSV (`python -m shared submit ... --results-dir res/01_biggest_model`,
    or `submission.ipynb` with `results_dir`; both call `submit.record`): the latest run per configuration, its SCS with the 95%
    interval, seconds a sample (model load excluded) and the hours the competition's samples
    would take; then, where the same configuration ran with and without prefix reuse (llama.cpp's
    kept KV state of the few-shot preamble, batch 1 only), the ratio of their seconds a sample."""
    df = _table("submissions")
    if df.empty:
        return ("_No rows in `res/01_biggest_model/submissions.jsonl` yet: run `python -m shared submit` "
                "with `--results-dir res/01_biggest_model`._")
    source = _source("submissions", "shared.task.submit --results-dir", df)
    keys = ["machine", "test", "model", "backend", "strategy", "batch_size", "reuse_prefix"]
    df = df.assign(**{k: df[k] if k in df else None for k in keys}).assign(
        machine=df["machine"].map(machine_label))
    df = df.drop_duplicates(keys, keep="last").assign(
        scs_ci95=lambda d: [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(d["score_scs_ci_low"], d["score_scs_ci_high"])])
    cols = keys + ["rows", "score_scs_mean", "scs_ci95", "score_encoder", "s_per_sample", "samples", "hours", "fits"]
    out = tables.markdown(df[[c for c in cols if c in df]].rename(columns={
        "score_scs_mean": "scs", "score_encoder": "encoder", "samples": "for_samples"}), floatfmt=".3g")
    lines = []
    same = [k for k in keys if k != "reuse_prefix"]
    for _, g in df.groupby(same, dropna=False):
        on, off = g[g["reuse_prefix"].eq(True)], g[g["reuse_prefix"].eq(False)]
        if len(on) and len(off):
            r = on.iloc[-1]
            lines.append(f"- Prefix reuse, {r['strategy']} with {r['model']} ({r['backend']}, batch "
                         f"{int(r['batch_size'])}) on {r['machine']}: {off['s_per_sample'].iloc[-1]:.2f} s a "
                         f"sample from an empty KV cache, {r['s_per_sample']:.2f} s with the preamble kept "
                         f"({off['s_per_sample'].iloc[-1] / r['s_per_sample']:.2f}x).")
    return out + ("\n\n" + "\n".join(lines) if lines else "") + "\n\n" + source


def _ranking(g) -> str:
    """Strategies by mean SCS over the same pairs: the best with its 95% interval, then each other
    with its mean and the best's paired lead over it (95% CI)."""
    wide = g.pivot(index="pair", columns="strategy", values="scs").dropna()
    means = wide.mean().sort_values(ascending=False)
    best = means.index[0]
    _, low, high = metrics.mean_ci(wide[best])
    parts = [f"**{best}** {means.iloc[0]:.3f} [{low:.3f}, {high:.3f}]"]
    for other in means.index[1:]:
        d, lo, hi = metrics.mean_ci(wide[best] - wide[other])
        parts.append(f"{other} {means[other]:.3f} ({best} ahead by {d:+.3f} [{lo:+.3f}, {hi:+.3f}])")
    return f"{len(wide)} held-out pairs: " + "; ".join(parts) + "."


def prompt_ranking() -> str:
    """The report's short form of `prompt_strategies` (same rows): per machine and model, each
    strategy's mean SCS and the best one's paired lead over it; the mean prompt's search."""
    name = _cpu_params("prompt_engineering")["validation_set"]
    ok = _held_out_rows(_table("prompt_engineering"), name)
    if ok.empty:
        return _source("prompt_engineering", "prompt_engineering.ipynb", ok)
    lines = [f"- {model} on {machine_label(machine)} ({', '.join(sorted(g['encoder'].unique()))}), "
             + _ranking(g) for (machine, model), g in ok.groupby(["machine", "model"])]
    return ("SCS means over the held-out pairs of `" + name + "`; each lead paired over the same pairs, "
            "with its 95% CI:\n\n" + "\n".join(lines + [f"- {t}" for t in _mean_prompt_lines(name)]))


BLOCKS = {
    "batch_throughput": batch_throughput,
    "batch_verdict": batch_verdict,
    "speed_decode": speed_decode,
    "speed_memory": speed_memory,
    "speed_prefill": speed_prefill,
    "speed_ratios": speed_ratios,
    "speed_failures": speed_failures,
    "budget_verdict": budget_verdict,
    "scaling_fits": scaling_fits,
    "eos_comparison": eos_comparison,
    "validation_set": validation_set,
    "prompt_strategies": prompt_strategies,
    "text_cut_sweep": text_cut_sweep,
    "submission_batches": submission_batches,
    "gpu_answer": gpu_answer,
    "roofline_accuracy": roofline_accuracy,
    "roofline_fast_enough": roofline_fast_enough,
    "roofline_cpu_ladder": roofline_cpu_ladder,
    "roofline_batch_check": roofline_batch_check,
    "roofline_seed_check": roofline_seed_check,
    "published_bnb_ratios": published_bnb_ratios,
    "prompt_ranking": prompt_ranking,
    "submissions": submissions,
}

# What the main job compares at its end, this run against the earlier rows of the same machine
# label (shared.report.reproduction): the headline metrics of each table.
HEADLINES = [
    reproduction.Headline(RESULTS / "speed.jsonl", keys=("model", "runtime"), where={"phase": "timed"},
                          metrics={"decode tok/s": "decode_tok_s",
                                   "prefill tok/s": lambda df: df["input_tokens"] / df["prefill_s"],
                                   "peak RSS MB": "peak_rss_mb"}),
    reproduction.Headline(RESULTS / "length_scaling.jsonl", keys=("model", "runtime"),  # the fixed-length point
                          where={"phase": "timed", "sweep": "batch", "batch_size": 1},
                          metrics={"decode tok/s": "decode_tok_s"}),
    reproduction.Headline(RESULTS / "prompt_engineering.jsonl", keys=("model", "strategy", "validation_set", "encoder"),
                          metrics={"SCS": "scs"}, per="run"),
    reproduction.Headline(RESULTS / "mean_prompt.jsonl", keys=("validation_set", "encoder"),
                          metrics={"held-out SCS": "held_out_scs"}, per="run"),
    reproduction.Headline(RESULTS / "machine_peaks.jsonl", keys=("threads",),
                          metrics={"copy GB/s": "copy_gb_s", "matmul fp32 TFLOP/s": "matmul_fp32_tflops"}),
]


def question_numbers() -> set[str]:
    """The question's own numbers, allowed in prose (shared.report.report.typed_numbers): the
    competition's budget hours, samples and the seconds a sample they give."""
    f = competition.facts()
    return {f"{f.budget_hours:g}", str(f.samples), f"{f.budget_s_per_sample:.1f}", f"{f.budget_s_per_sample:.0f}"}
