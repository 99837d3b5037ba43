"""The generated blocks of this iteration's README.md, each made from the results on disk.

`python -m shared.report iterations/01_biggest_model` rewrites them; a test fails when they
differ from what the results produce.
"""
from shared import analysis, metrics, results
from shared.machine import REPO

RESULTS = REPO / "res" / "01_biggest_model"


def _table(name: str):
    return results.read(RESULTS / f"{name}.jsonl")


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
                       + analysis.markdown(ratios, floatfmt=".2f"))
    return "\n\n".join(out) or _source("speed", "speed.ipynb", df)


def speed_failures() -> str:
    fails = analysis.failures(_table("speed"))
    return "No configuration failed." if fails.empty else analysis.markdown(fails)


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
    return head + analysis.markdown(v[cols].sort_values(["machine", "model", "runtime"]))


def scaling_fits() -> str:
    df = _table("length_scaling")
    fits = analysis.scaling_fits(df)
    return analysis.markdown(fits, floatfmt=".4g") + "\n\n" + _source("length_scaling", "length_scaling.ipynb", df)


def eos_comparison() -> str:
    df = _table("eos")
    return analysis.markdown(analysis.eos_summary(df), floatfmt=".3g") + "\n\n" + _source("eos", "eos.ipynb", df)


def validation_set() -> str:
    df = _table("validation_smollm2")
    if df.empty:
        return _source("validation_smollm2", "make_validation_set.ipynb", df)
    gen = ", ".join(sorted(df["generator"].unique()) + sorted(df["generator_runtime"].unique()))
    return (f"{len(df)} pairs over {df['genre'].nunique()} genres and {df['kind'].nunique()} kinds "
            f"of prompt ({', '.join(sorted(df['kind'].unique()))}); rewritten by {gen}, greedy, at most "
            f"{int(df['max_new_tokens'].max())} tokens ({int((df['stop_reason'] == 'length').sum())} "
            f"rewrites hit that cap, {int(df['error'].notna().sum())} failed); median "
            f"{df['seconds'].median():.1f} s a rewrite.\n\n"
            + _source("validation_smollm2", "make_validation_set.ipynb", df))


def prompt_strategies() -> str:
    df = _table("prompt_engineering")
    ok = df[df["status"].eq("ok")] if not df.empty else df
    if ok.empty:
        return _source("prompt_engineering", "prompt_engineering.ipynb", df)
    parts = []
    for (model, runtime), g in ok.groupby(["model", "runtime"]):
        parts.append(f"**{model}** ({runtime}), SCS with **{', '.join(sorted(g['encoder'].unique()))}**:\n\n"
                     + analysis.markdown(metrics.summarize(g)))
    return "\n\n".join(parts) + "\n\n" + _source("prompt_engineering", "prompt_engineering.ipynb", df)


BLOCKS = {
    "speed_decode": speed_decode,
    "speed_prefill": speed_prefill,
    "speed_ratios": speed_ratios,
    "speed_failures": speed_failures,
    "budget_verdict": budget_verdict,
    "scaling_fits": scaling_fits,
    "eos_comparison": eos_comparison,
    "validation_set": validation_set,
    "prompt_strategies": prompt_strategies,
}
