"""The generated blocks of this iteration's README.md, each made from the results on disk.

`python -m shared.report iterations/01_biggest_model` rewrites them; a test fails when they
differ from what the results produce.
"""
import functools

from shared import analysis, calibration, fastenough, metrics, results
from shared.machine import REPO

RESULTS = REPO / "res" / "01_biggest_model"


def _table(name: str):
    return results.read(RESULTS / f"{name}.jsonl")


def _short_machines(table):
    """`table` with its machine column in short labels ("AMD EPYC 2c", "Xeon 2c", "T4")."""
    return table.assign(machine=table["machine"].map(analysis.machine_label)) if "machine" in table else table


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
    return (analysis.markdown(analysis.speed_table(df, "decode_tok_s"), index=True) + "\n\n"
            + _source("speed", "speed.ipynb", df))


def speed_prefill() -> str:
    df = _table("speed")
    if df.empty:
        return _source("speed", "speed.ipynb", df)
    n = int(analysis.ok_timed(df)["input_tokens"].median())
    return (f"Prefill seconds (time to first token) for a typical input of about {n} tokens:\n\n"
            + analysis.markdown(analysis.speed_table(df, "prefill_s"), index=True))


def speed_ratios() -> str:
    df = _table("speed")
    out = []
    for metric in ("decode_tok_s", "prefill_s"):
        ratios = analysis.speedup(df, "transformers fp32", metric)
        if not ratios.empty:
            out.append(f"`{metric}` of each runtime / transformers fp32 (median):\n\n"
                       + analysis.markdown(_short_machines(ratios.dropna(axis=0, thresh=3)), floatfmt=".2f"))
    return "\n\n".join(out) or _source("speed", "speed.ipynb", df)


def speed_failures() -> str:
    fails = analysis.failures(_table("speed"))
    return "No configuration failed." if fails.empty else analysis.markdown(_short_machines(fails))


def budget_verdict() -> str:
    df = _table("speed")
    ok = analysis.ok_timed(df)
    if ok.empty:
        return _source("speed", "speed.ipynb", df)
    last = ok.iloc[-1]
    v = analysis.verdict(df, last["budget_hours"], int(last["samples"]), int(last["target_output_tokens"]))
    head = (f"Budget: {last['budget_hours']:g} h for {int(last['samples'])} samples = "
            f"**{v.attrs['budget_s']:.1f} s per sample**; wanted output: "
            f"{v.attrs['output_tokens']} tokens.\n\n")
    cols = ["model", "runtime", "machine", "input_tokens", "prefill_s", "decode_tok_s",
            "s_per_sample", "max_output_tokens", "fits"]
    return head + analysis.markdown(_short_machines(v[cols].sort_values(["machine", "model", "runtime"])))


def scaling_fits() -> str:
    df = _table("length_scaling")
    fits = analysis.scaling_fits(df)
    return analysis.markdown(fits, floatfmt=".4g") + "\n\n" + _source("length_scaling", "length_scaling.ipynb", df)


def eos_comparison() -> str:
    df = _table("eos")
    return (analysis.markdown(_short_machines(analysis.eos_summary(df)), floatfmt=".3g") + "\n\n"
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


def prompt_strategies() -> str:
    name = _cpu_params("prompt_engineering")["validation_set"]
    df = _table("prompt_engineering")
    ok = _held_out_rows(df, name)
    if ok.empty:
        return _source("prompt_engineering", "prompt_engineering.ipynb", df)
    parts = []
    searches = _table("mean_prompt")
    if not searches.empty:
        for _, m in searches[searches["validation_set"].eq(name)].groupby("machine").tail(1).iterrows():
            parts.append(
                f"**Mean prompt** found on the training split ({m['n_train']} pairs; "
                f"{'greedy' if m['beam_width'] == 1 else 'beam width %d' % m['beam_width']}"
                f" search, {m['steps']} of at most {m['max_steps']} steps, pool of {m['pool_size']} words "
                f"and phrases, seed {m['seed']}), SCS with **{m['encoder']}**: `{m['prompt']}`; "
                f"train SCS {m['train_scs']:.3f}, held-out SCS {m['held_out_scs']:.3f} "
                f"[{m['held_out_ci_low']:.3f}, {m['held_out_ci_high']:.3f}] (n = {m['n_held_out']}).")
    for (machine, model), g in ok.groupby(["machine", "model"]):
        runtime = ", ".join(sorted(set(g["runtime"].dropna()) - {"none"})) or "no model call"
        table = metrics.summarize(g)
        parts.append(f"**{model}** ({runtime}) on {machine}, held-out split of `{name}`, SCS with "
                     f"**{', '.join(sorted(g['encoder'].unique()))}**:\n\n"
                     + analysis.markdown(table) + "\n\n" + _verdict(g))
    return "\n\n".join(parts) + "\n\n" + _source("prompt_engineering", "prompt_engineering.ipynb", df)


@functools.cache
def _roofline_model():
    return fastenough.Model(RESULTS)


def _roofline_source(m) -> str:
    hw = m.this_machine()
    peak = next((p for p in m.peaks if hw is not None and p["machine"] == hw.key), None)
    measured = (f"this machine ({hw.label}) measured by `shared/peaks.py`: triad {peak['triad_gb_s']:.1f} GB/s, "
                f"fp32 matmul {peak['matmul_fp32_tflops'] * 1e3:.0f} GFLOP/s with {peak['threads']} threads "
                f"(1-min load {peak['load_avg_1min']:.1f})" if peak else "this machine's peaks not measured yet")
    return (f"_Made by `roofline.ipynb` from `res/01_biggest_model/speed.jsonl`, `length_scaling.jsonl` and "
            f"`machine_peaks.jsonl` ({measured}), `shared/data/published_speeds.yaml` "
            f"({sum(o.dataset == 'published' for o in m.observations)} published rows) and the facts in "
            f"`shared/hardware.yaml`, `shared/data/quantization.yaml`, `shared/models.yaml`._")


def roofline_accuracy() -> str:
    m = _roofline_model()
    summary = fastenough.loo_summary(m)
    if summary.empty:
        return "_No measured rows yet: run `roofline.ipynb`._"
    return (analysis.markdown(summary, floatfmt=".1f") + "\n\n"
            "Leave-one-out: each configuration (model x quantization x runtime x hardware) is predicted "
            "by constants fitted without it; errors are absolute percentages, median and worst over "
            "configurations. Published rows that the source itself calls compute-bound (Q2_K / Q3_K_S on a "
            "P40) are left out of the fit and of these numbers.\n\n" + _roofline_source(m))


def roofline_fast_enough() -> str:
    m = _roofline_model()
    table = fastenough.fast_enough(m)
    return (f"Each cell: ✓ fast enough / slow, predicted decode tok/s, seconds per sample of "
            f"{fastenough.INPUT_TOKENS} input + {fastenough.OUTPUT_TOKENS} output tokens, memory needed "
            f"(weights + KV cache + runtime overhead where one was measured); ✗ = does not fit in memory. "
            f"Budget {fastenough.BUDGET_HOURS:g} h / {fastenough.SAMPLES} samples = "
            f"{fastenough.BUDGET_HOURS * 3600 / fastenough.SAMPLES:.1f} s a sample.\n\n"
            + analysis.markdown(fastenough.fast_enough_grid(table))
            + "\n\nThe biggest candidate that fits memory and budget on each GPU (a quantization calibrated "
            "on measured rows preferred):\n\n" + fastenough.biggest_sentences(table)
            + "\n\nWhich rows calibrated each runtime on each GPU, and the leave-one-out error of that family:\n\n"
            + analysis.markdown(fastenough.calibrations(m, table), floatfmt=".0f") + "\n\n" + _roofline_source(m))


def roofline_cpu_ladder() -> str:
    m = _roofline_model()
    ladder = fastenough.cpu_ladder(m)
    if ladder.empty:
        return "_This machine's peaks are not measured: run `roofline.ipynb`._"
    return (f"On {m.this_machine().label}, a sample of {fastenough.INPUT_TOKENS} + {fastenough.OUTPUT_TOKENS} "
            "tokens. Measured rows: decode tok/s from the rows, prefill scaled linearly from the measured "
            "input length, and the leave-one-out prediction beside them (`loo_err_pct`: its error); predicted "
            "rows are marked, their `loo_err_pct` is the median leave-one-out error of their runtime here.\n\n"
            + analysis.markdown(ladder, floatfmt=".3g"))


def roofline_seed_check() -> str:
    m = _roofline_model()
    check = calibration.seed_check(m.calibrator)
    verdicts = calibration.seed_verdicts(check)
    lines = []
    for column, g in verdicts.groupby("column", sort=False):
        sup = ", ".join(g.loc[g["supported"], "hypothesis"]) or "none"
        ruled = [f"{r['hypothesis']} ({r['no_fit']} of {r['cells']} models do not fit, highest implied "
                 f"efficiency {r['max_implied_eff']:.2f})" for _, r in g.iterrows() if r["plausible"] < r["cells"]]
        lines.append(f"- **{column}**: consistent with {sup}" + (f"; ruled out: {'; '.join(ruled)}" if ruled else "") + ".")
    return (f"Implied efficiency = seed tok/s x bytes per token / bandwidth; a cell is plausible when the "
            f"model fits the GPU's memory and the efficiency is at most {check.attrs['efficiency_ceiling']:.2f}, "
            "the highest of any published llama.cpp row. `median_factor_off`: how far the calibrated "
            "prediction is from the seed's numbers (a factor, 1 = equal).\n\n"
            + analysis.markdown(verdicts, floatfmt=".2f") + "\n\n" + "\n".join(lines)
            + "\n\n_Per cell: `calibration.seed_check` (in `roofline.ipynb`); the seed's numbers are in "
            "`shared/data/seed_speeds.yaml` with their source._")


def speed_memory() -> str:
    df = _table("speed")
    table = analysis.memory_table(df)
    if table.empty:
        return "_No rows with the memory-footprint fields yet: run `speed.ipynb` (`make run REDO=1`)._"
    return (analysis.markdown(table.assign(machine=table["machine"].map(analysis.machine_label)),
                              floatfmt=".0f") + "\n\n" + _source("speed", "speed.ipynb", df))


def batch_throughput() -> str:
    df = _table("batch")
    table = analysis.batch_table(df)
    if table.empty:
        return _source("batch", "speed.ipynb with PARAMS=cpu_full (batch_sizes)", df)
    return analysis.markdown(table, floatfmt=".3g") + "\n\n" + _source("batch", "speed.ipynb", df)


def batch_verdict() -> str:
    """Per model and machine: vLLM's largest batch against llama.cpp's batch 1, and its start-up
    (which includes the one-time GGUF conversion when the row says it converted: from_cache false)."""
    df = _table("batch")
    table = analysis.batch_table(df)
    if table.empty:
        return _source("batch", "speed.ipynb with PARAMS=cpu_full (batch_sizes)", df)
    ok = analysis.ok_timed(df)
    converted = set(ok.loc[ok["backend"].eq("vllm") & ok["from_cache"].eq(False), "model"]) if "from_cache" in ok else set()
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
                     + (" (including the one-time GGUF conversion to its cache)" if r["model"] in converted else "")
                     + ".")
    return "\n".join(lines) or "_No vLLM batch rows yet._"


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
    "roofline_accuracy": roofline_accuracy,
    "roofline_fast_enough": roofline_fast_enough,
    "roofline_cpu_ladder": roofline_cpu_ladder,
    "roofline_seed_check": roofline_seed_check,
}
