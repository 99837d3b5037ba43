"""From result rows to the numbers a report states: speed tables, the budget verdict, line fits,
markdown tables. The row-picking helpers (latest_run, ok_timed, numeric) are in shared.results."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from shared import results
from shared.models import catalog
from shared.machine import machine_label


def _median_std(r) -> str:
    """A speed-table cell: 'median ± std', 'n/a' where the value is undefined in every row."""
    if pd.isna(r["median"]):
        return "n/a"
    return f"{r['median']:.1f} ± {0 if pd.isna(r['std']) else r['std']:.1f}"


def column(df: pd.DataFrame) -> pd.Series:
    """The seed's table columns: one per runtime and machine ("llama.cpp Q4_1<br>AMD EPYC 2c")."""
    return df["runtime"] + "<br>" + df["machine"].map(machine_label)


def speed_table(df: pd.DataFrame, metric: str = "decode_tok_s") -> pd.DataFrame:
    """Models as rows, runtime x machine as columns, cells 'median ± std' of `metric`."""
    df = results.numeric(results.ok_timed(df), [metric])
    if df.empty:
        return pd.DataFrame()
    df = df.assign(column=column(df))
    stats = df.groupby(["model", "column"])[metric].agg(["median", "std", "count"])
    cells = stats.apply(_median_std, axis=1)
    table = cells.unstack("column").fillna("")
    order = sorted(table.index, key=lambda m: (catalog.catalog().get(m).params_b if m in catalog.catalog() else 0) or 0)
    return table.loc[order]


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """The configurations whose latest row is a failure, with its reason: also one that crashed
    after some ok rows; a later success clears it (the rule of results.done_configs)."""
    if df.empty or "status" not in df:
        return pd.DataFrame()
    keys = [c for c in ("model", "backend", "quantization", "machine") if c in df]
    latest = df.drop_duplicates(subset=keys, keep="last")  # a later success clears a failure
    return latest[latest["status"].eq("failed")][keys + ["error"]]


def verdict(df: pd.DataFrame, budget_hours: float, samples: int, output_tokens: int) -> pd.DataFrame:
    """Is each model x runtime x machine fast enough for the competition?

    Per sample the budget is budget_hours * 3600 / samples seconds. With the measured prefill
    time for a typical input and the measured decode rate, the largest output that fits is
    1 + (budget - prefill_s) * decode_tok_s tokens; `fits` compares it with `output_tokens`.

    An undefined value stays undefined (an empty cell, "n/a" for fits): rows of 1-token answers
    have no decode rate, so the largest output is unknown unless the first token alone misses
    the budget (then 0 and "no"); a wanted output of 1 token needs no decode rate.
    """
    df = results.numeric(results.ok_timed(df), ["input_tokens", "prefill_s", "decode_tok_s"])
    budget_s = budget_hours * 3600 / samples
    if df.empty:
        empty = pd.DataFrame()
        empty.attrs.update(budget_s=budget_s, output_tokens=output_tokens)
        return empty
    g = df.groupby(["model", "runtime", "machine"]).agg(
        input_tokens=("input_tokens", "median"), prefill_s=("prefill_s", "median"),
        decode_tok_s=("decode_tok_s", "median")).reset_index()
    prefill, rate = g["prefill_s"], g["decode_tok_s"]
    over = prefill > budget_s  # the first token alone misses the budget (False where unknown)
    most = np.floor(1 + (budget_s - prefill) * rate).clip(lower=0).where(~over, 0)
    g["max_output_tokens"] = most.astype("Int64")  # NaN -> <NA>, an empty cell
    g["s_per_sample"] = prefill + ((output_tokens - 1) / rate if output_tokens > 1 else 0.0)
    g["fits"] = np.select([over, g["s_per_sample"].isna(), g["s_per_sample"] <= budget_s],
                          ["no", "n/a", "yes"], "no")
    g.attrs.update(budget_s=budget_s, output_tokens=output_tokens)
    return g


def linear_fit(x, y) -> dict:
    """Least-squares line y = slope * x + intercept, with R^2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        return {"slope": float("nan"), "intercept": float("nan"), "r2": float("nan")}
    slope, intercept = np.polyfit(x, y, 1)
    pred = slope * x + intercept
    ss_tot = ((y - y.mean()) ** 2).sum()
    r2 = 1 - ((y - pred) ** 2).sum() / ss_tot if ss_tot > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2)}


def with_model_memory(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with peak_model_rss_mb = peak_rss_mb - rss_before_load_mb: the model's share of a
    call's peak (weights, KV cache, activations), without the interpreter and libraries the
    process held before loading. Empty for older rows that lack rss_before_load_mb."""
    if df.empty or "peak_rss_mb" not in df:
        return df
    before = pd.to_numeric(df.get("rss_before_load_mb", pd.Series(np.nan, index=df.index)), errors="coerce")
    return df.assign(peak_model_rss_mb=pd.to_numeric(df["peak_rss_mb"], errors="coerce") - before)


def memory_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model x runtime x machine, medians in MB: the process before loading, the model's
    share after loading (model_rss_mb) and at the peak of a generation (peak_model_rss_mb),
    the process peak, and CUDA allocated / reserved where on a GPU. Rows older than the
    rss_before_load_mb field are left out."""
    d = with_model_memory(results.ok_timed(df))
    if d.empty or "peak_model_rss_mb" not in d or d["peak_model_rss_mb"].isna().all():
        return pd.DataFrame()
    d = d[d["peak_model_rss_mb"].notna()]
    cols = [c for c in ("rss_before_load_mb", "model_rss_mb", "peak_model_rss_mb", "peak_rss_mb",
                        "cuda_max_allocated_mb", "cuda_max_reserved_mb") if c in d]
    d = d.assign(**{c: pd.to_numeric(d[c], errors="coerce") for c in cols})
    return d.groupby(["model", "runtime", "machine"])[cols].median().dropna(axis=1, how="all").reset_index()


# (sweep, x column, y column, unit of y) for the length-scaling notebook and report; memory is
# the model's share (with_model_memory), not the whole process
SCALING_CURVES = [
    ("input", "input_tokens", "prefill_s", "s"),
    ("input", "input_tokens", "peak_model_rss_mb", "MB"),
    ("output", "output_tokens", "total_s", "s"),
    ("output", "output_tokens", "peak_model_rss_mb", "MB"),
    ("batch", "batch_size", "throughput_tok_s", "tok/s"),
    ("batch", "batch_size", "peak_model_rss_mb", "MB"),
]


def scaling_fits(df: pd.DataFrame) -> pd.DataFrame:
    """A fitted line for every curve of the length-scaling sweeps, per model and runtime."""
    df = with_model_memory(results.ok_timed(df))
    rows = []
    if df.empty:
        return pd.DataFrame()
    for (model, runtime, mach), g in df.groupby(["model", "runtime", "machine"]):
        for sweep, x, y, unit in SCALING_CURVES:
            pts = results.numeric(g[g["sweep"] == sweep], [x, y]).groupby(x)[y].median().dropna()
            if len(pts) < 2:
                continue
            fit = linear_fit(pts.index, pts.values)
            rows.append({"model": model, "runtime": runtime, "machine": mach, "curve": f"{y} vs {x}",
                         "slope": fit["slope"], "intercept": fit["intercept"], "r2": fit["r2"],
                         "unit": f"{unit} per {x.removesuffix('s').replace('_', ' ')}", "points": len(pts)})
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, floatfmt: str = ".3g", index: bool = False) -> str:
    """A DataFrame as a GitHub markdown table ('_no rows yet_' when empty)."""
    if df.empty:
        return "_no rows yet: run the notebook_"
    df = df.replace([np.inf, -np.inf], np.nan)
    df = df.astype(object).map(_plain).astype(object)
    df = df.where(df.notna(), None)  # blank cells, not "nan"
    return df.to_markdown(index=index, floatfmt=floatfmt, missingval="")


def _plain(value):
    """A float that is a whole number (a count read back from JSON as 9.0) or is 1000 or more
    (where floatfmt ".3g" would print 1.89e+03) as an int; anything else as it is."""
    if isinstance(value, float) and math.isfinite(value) and (value.is_integer() or abs(value) >= 1000):
        return int(round(value))
    return value


def eos_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean output tokens and seconds per answer, and how many stopped at EOS, per mode."""
    ok = results.numeric(results.latest_run(df[df["status"].eq("ok")]), ["output_tokens", "total_s"]) if not df.empty else df
    if ok.empty:
        return pd.DataFrame()
    return ok.groupby(["model", "runtime", "machine", "mode"]).agg(
        answers=("output_tokens", "size"), output_tokens=("output_tokens", "mean"),
        total_s=("total_s", "mean"),
        stopped_at_eos=("stop_reason", lambda s: int((s == "eos").sum()))).reset_index()


def speedup(df: pd.DataFrame, baseline: str, metric: str = "decode_tok_s") -> pd.DataFrame:
    """Median `metric` of each runtime divided by the `baseline` runtime's, per model and machine."""
    if results.ok_timed(df).empty:
        return pd.DataFrame()
    med = results.numeric(results.ok_timed(df), [metric]).groupby(["model", "machine", "runtime"])[metric].median().unstack("runtime")
    if med.empty or baseline not in med:
        return pd.DataFrame()
    return med.div(med[baseline], axis=0).round(2).reset_index()


BATCH_KEYS = ["model", "runtime", "machine", "input_tokens", "max_new_tokens"]


def batch_table(df: pd.DataFrame, baseline: str = "llama.cpp") -> pd.DataFrame:
    """Samples/s by batch size (medians of the timed batches, each configuration's latest run),
    one row per model x runtime x machine x lengths, with the load time (vLLM: the engine's
    start-up) and the ratio of the largest batch to `baseline`'s batch 1 on the same model,
    machine and lengths (baseline: the runtime names starting with it, e.g. "llama.cpp Q4_K_M")."""
    ok = results.numeric(results.ok_timed(df), ["samples_s", "load_s", "ttft_median_s", "batch_size"])
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(machine=ok["machine"].map(machine_label), batch_size=ok["batch_size"].astype(int))
    per = ok.groupby(BATCH_KEYS + ["batch_size"])["samples_s"].median().unstack("batch_size")
    sizes = list(per.columns)
    per.columns = [f"samples/s b{b}" for b in sizes]
    table = ok.groupby(BATCH_KEYS)["load_s"].median().rename("start-up s").to_frame().join(per).reset_index()
    base = ok[ok["runtime"].str.startswith(baseline) & ok["batch_size"].eq(1)]
    base = base.groupby(["model", "machine", "input_tokens", "max_new_tokens"])["samples_s"].median()
    top = table[[f"samples/s b{b}" for b in sizes]].ffill(axis=1).iloc[:, -1]
    ref = table.set_index(["model", "machine", "input_tokens", "max_new_tokens"]).index.map(base.get)
    table[f"largest batch / {baseline} b1"] = (top.to_numpy() / pd.to_numeric(pd.Series(ref), errors="coerce").to_numpy())
    return table.sort_values(["machine", "model", "runtime"]).reset_index(drop=True)
