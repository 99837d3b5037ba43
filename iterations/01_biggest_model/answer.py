"""Iteration 1's answer: which model is fast enough where, as tables and sentences for its report.

The `roofline` notebook predicts the grid with shared.speed.predictor and appends it to
res/01_biggest_model/roofline.jsonl; report_blocks.py and the notebook turn those rows into the
grid, the batched table, the calibrations, the biggest candidate per GPU at 4 bits or more and
at the lowest bits public perplexity figures still call usable (`answer`: also from a range's
slow end), and the figure of decode tok/s against bytes per token. This module is Iteration 1's
own (nothing in shared/ imports it): load it with shared.report.report.iteration_module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared import results
from shared.speed import modelfiles, roofline
from shared.speed.predictor import FAMILIES, SPEED_ROWS, Predictor, nominal_bits  # noqa: F401

RESULTS = SPEED_ROWS
PREDICTIONS_TABLE = "roofline.jsonl"
# The hardware list, candidates, budget (hours, samples) and workload live once, in
# iterations/01_biggest_model/params/*.yaml (section `roofline`): nothing here repeats them.


def lab_output_tokens(results_dir: str | Path = RESULTS, table: str = "prompt_engineering.jsonl") -> int | None:
    """Median output tokens per model call of the lab's own prompt-recovery rows (the length a
    recovered prompt takes), or None where there are none."""
    df = results.read(Path(results_dir) / table)
    if df.empty or "output_tokens" not in df:
        return None
    ok = df[df["status"].eq("ok") & pd.to_numeric(df.get("model_calls"), errors="coerce").gt(0)]
    if ok.empty:
        return None
    return int(round(float((ok["output_tokens"] / ok["model_calls"]).median())))


WEIGHTS_TAG = {"file": "file", "catalog GGUF": "file", "bpw estimate": "bpw est.", "parameters": "params"}


def _cell(r) -> str:
    tag = WEIGHTS_TAG.get(r.get("weights_source"), "") if "weights_source" in r else ""
    tag = f" ({tag})" if tag else ""
    if r["fits_memory"] is False:
        return (f"✗ {r['memory_per_gpu_gb']:.1f} GB > {r['memory_available_gb']:.1f} "
                f"(margin {r['memory_margin_gb']:+.1f}){tag}")
    margin = (f"margin {r['memory_margin_gb']:+.1f} GB{tag}" if pd.notna(r["memory_margin_gb"])
              else f"memory unknown{tag}")
    if not r["calibrated"]:
        kind = "range" if str(r.get("decode_calibration", "")).startswith("range") else "uncalibrated"
        return (f"{kind} {r['decode_tok_s_low']:.0f}-{r['decode_tok_s']:.0f} tok/s, "
                f"{r['s_per_sample']:.1f}-{r['s_per_sample_high']:.1f} s, {margin}")
    if r["calibrated"] and "plausible" in r and r["plausible"] is False:
        return (f"⚠ above ceiling {r['decode_tok_s']:.0f} tok/s (implied efficiency {r['implied_efficiency']:.2f} > "
                f"{r['efficiency_ceiling']:.2f}), {r['s_per_sample']:.1f} s, {margin}")
    mark = "✓" if r["fast_enough"] else "slow"
    bound = " (fit at bound)" if r.get("decode_at_bound") is True else ""
    return f"{mark} {r['decode_tok_s']:.0f} tok/s{bound}, {r['s_per_sample']:.1f} s, {r['calls_per_sample']:.0f}x, {margin}"


def fast_enough_grid(table: pd.DataFrame, batch_size: int = 1) -> pd.DataFrame:
    """The table as the report shows it: model x quantization rows, one column per GPU."""
    t = table[table["batch_size"] == batch_size]
    if "split" in t:            # the row split of a multi-GPU card is the answer's, not the grid's
        t = t[t["split"].fillna("layer").eq("layer")]
    t = t.assign(cell=t.apply(_cell, axis=1))
    grid = t.pivot_table(index=["model", "quantization"], columns="hardware", values="cell", aggfunc="first", sort=False)
    return grid[list(dict.fromkeys(t["hardware"]))].reset_index()


BATCH_CAPTION = ("llama-cpp-python, the lab's llama.cpp backend, runs prompts one at a time: a llama.cpp batch "
                 "above 1 means llama.cpp's own batched decoding (llama-server with -np slots, llama-batched-bench), "
                 "not the lab's runs; transformers batches with generate() on a padded batch.")


def _range(low: float, high: float, calibrated: bool, fmt: str = ".3g") -> str:
    def num(x: float) -> str:  # 1500, not 1.5e+03
        return f"{x:.0f}" if abs(x) >= 100 else f"{x:{fmt}}"
    return num(high) if calibrated else f"uncalibrated {num(low)}-{num(high)}"


def batched_table(table: pd.DataFrame, hardware: str = "T4", models=None, quantizations=None) -> pd.DataFrame:
    """The batch sizes of `table` (fast_enough's rows) on one GPU side by side, per model and
    quantization: decode tok/s per sequence, throughput of the batch and seconds a sample, each a
    range "uncalibrated LOW-HIGH" (the runtime's no-batching-gain end to the roofline ceiling) where
    no batched row of the runtime on the card's generation calibrates it; the rows that did."""
    t = table[table["hardware"].eq(hardware)]
    if models is not None:
        t = t[t["model"].isin(list(models))]
    if quantizations is not None:
        t = t[t["quantization"].isin(list(quantizations))]
    rows = []
    for r in t.to_dict("records"):
        cal = bool(r["calibrated"])
        rows.append({"model": r["model"], "quantization": r["quantization"], "runtime": r["family"],
                     "batch_size": int(r["batch_size"]), "fits_memory": r["fits_memory"],
                     "decode_tok_s": _range(r["decode_tok_s_low"], r["decode_tok_s"], cal),
                     "throughput_tok_s": _range(r["decode_tok_s_low"] * r["batch_size"], r["throughput_tok_s"], cal),
                     "s_per_sample": _range(r["s_per_sample"], r["s_per_sample_high"], cal),   # = when calibrated
                     "decode_calibration": r["decode_calibration"]})
    out = pd.DataFrame(rows)
    return out.sort_values(["model", "quantization", "batch_size"], kind="stable").reset_index(drop=True) if rows else out


def calibrations(table: pd.DataFrame) -> pd.DataFrame:
    """Which rows calibrated each family x hardware of the table, and the column's held-out error."""
    t = table[table["batch_size"] == 1].drop_duplicates(["family", "hardware"])
    return pd.DataFrame({"family": t["family"], "hardware": t["hardware"],
                         "decode calibrated by": t["decode_calibration"],
                         "held-out error %": t["decode_error_pct"].round(0),
                         "held out": t["error_scope"]})


def biggest(table: pd.DataFrame, min_bits: int = 4, max_ppl_delta: float | None = None) -> pd.DataFrame:
    """Per hardware: the candidate with the most parameters that fits memory and the budget on a
    runtime calibrated on its card's own rows (`answer` without ranges), in its fastest such quantization of at least
    `min_bits` nominal bits (and, with `max_ppl_delta`, whose published perplexity increase is at
    most that; a quantization with no published figure does not qualify then)."""
    return answer(table, min_bits, max_ppl_delta, ranges=False)


def _cards(table: pd.DataFrame) -> list[str]:
    """The table's GPUs in order, without the row-split twins of a multi-GPU card."""
    t = table[table["split"].fillna("layer").eq("layer")] if "split" in table else table
    return list(dict.fromkeys(t["hardware"]))


def answer(table: pd.DataFrame, min_bits: int = 4, max_ppl_delta: float | None = None,
           ranges: bool = True) -> pd.DataFrame:
    """Per hardware, the answer: as `biggest`, but (with `ranges`) a card whose runtime is a range
    from its generation's rows (fewer than two rows of its own: the P100) is answered by the
    biggest candidate whose slow end is still fast enough, marked `basis` "range" (else
    "calibrated"). Layer split, batch 1, plausible cells only (a calibrated cell above the
    plausibility ceiling is never an answer); ties go to calibrated rows, then to the faster."""
    t = table[(table["batch_size"] == 1) & (table["fits_memory"] != False) & table["fast_enough"]  # noqa: E712
              & (table["bits"] >= min_bits)]
    if "split" in t:
        t = t[t["split"].fillna("layer").eq("layer")]
    if "plausible" in t:
        t = t[t["plausible"].fillna(True).astype(bool) | ~t["calibrated"].astype(bool)]
    if max_ppl_delta is not None:
        t = t[t["ppl_delta"].notna() & (t["ppl_delta"] <= max_ppl_delta)]
    ranged = t["decode_calibration"].astype(str).str.startswith("range") & ranges
    t = t[t["calibrated"].astype(bool) | ranged].assign(basis=lambda d: d["calibrated"].map({True: "calibrated", False: "range"}))
    rows = []
    for hw in _cards(table):
        g = t[t["hardware"] == hw]
        if g.empty:
            rows.append({"hardware": hw})
            continue
        g = g[g["params_b"] == g["params_b"].max()]
        rows.append(g.sort_values(["calibrated", "decode_tok_s"], ascending=False).iloc[0].to_dict())
    return pd.DataFrame(rows)


def biggest_sentences(table: pd.DataFrame, min_bits: int = 4, max_ppl_delta: float | None = None) -> str:
    lines = []
    for _, r in biggest(table, min_bits, max_ppl_delta).iterrows():
        if pd.isna(r.get("model")):
            lines.append(f"- **{r['hardware']}**: no candidate fits on a calibrated runtime (where its runtimes are "
                         "ranges, the answer at the top of the report gives the biggest whose slow end is fast enough).")
            continue
        err = (f"held-out error {r['decode_error_pct']:.0f}% ({r['error_scope']})" if pd.notna(r["decode_error_pct"])
               else f"no held-out error ({r['error_scope']})")
        lines.append(f"- **{r['hardware']}**: **{r['model']}** ({r['params_b']:g} B parameters) in {r['quantization']} "
                     f"({r['family']}): {r['memory_per_gpu_gb']:.1f} GB a GPU of {r['memory_available_gb']:.1f} visible "
                     f"(margin {r['memory_margin_gb']:+.1f} GB, KV for n_ctx {r['n_ctx']:.0f}; weights: {_weights_text(r)}), "
                     f"{r['decode_tok_s']:.0f} tok/s predicted, {err}; {r['s_per_sample']:.1f} s a call of "
                     f"{r['input_tokens']:.0f} + {r['output_tokens']:.0f} tokens: **{r['calls_per_sample']:.0f} calls a "
                     f"sample** fit {_budget_text(r)}.")
    return "\n".join(lines)


def _weights_text(r) -> str:
    """Where a row's weight bytes come from: the published file (named) or the estimate."""
    source = r.get("weights_source")
    if source is None or (isinstance(source, float) and pd.isna(source)):
        return "not recorded"
    if source == "file":                    # weights_file reads "file NAME SIZE GB (quantizer)..."
        return str(r["weights_file"])
    return f"{source}, {r['weights_file']}" if source == "bpw estimate" else source


def _budget_text(r) -> str:
    """The per-sample budget a row's calls were counted in, with the load time taken from it."""
    load = r.get("load_s")
    if load is None or pd.isna(load) or pd.isna(r.get("budget_net_s")):
        return f"the {r['budget_s']:.1f} s budget (no load time counted)"
    how = str(r["load_calibration"]).split(":")[0]          # "1 public row" | "uncalibrated for llama.cpp"
    how = ("load time from 1 public load row of this runtime" if how.startswith("1 public row")
           else f"load time {how}: the read rate of another runtime's load")
    return (f"the {r['budget_net_s']:.2f} s a sample left of {r['budget_s']:.2f} s after loading the model once "
            f"in {load:.0f} s ({how})")


def load_summary(table: pd.DataFrame) -> str:
    """One sentence on the load times a table used: the rate's source and the range over its rows."""
    if "load_s" not in table:
        return ("These rows predate load times and published file sizes (roofline.predict counts them now): "
                "run roofline.ipynb again.")
    if table["load_s"].isna().all():
        return "No load time is counted (no public read rate for these machines, data/load_times.yaml)."
    t = table[table["load_s"].notna()]
    rate = modelfiles.rate_for(str(t["hardware"].iloc[0]))
    basis = (f"bytes read at load / {rate.read_gb_s:.3f} GB/s, the Kaggle read rate of one public row ({rate.gb:g} GB "
             f"in {rate.seconds:g} s: {rate.what}; {rate.source})" if rate else "bytes read at load / the read rate")
    lo, hi = t.loc[t["load_s"].idxmin()], t.loc[t["load_s"].idxmax()]
    return (f"Model load, once a submission: {basis}; GGUF files are read whole, transformers and bitsandbytes "
            f"read the fp16 checkpoint (the load time is calibrated for those two, uncalibrated for llama.cpp): from {lo['load_s']:.0f} s "
            f"({lo['model']} {lo['quantization']}) to {hi['load_s']:.0f} s ({hi['model']} {hi['quantization']}), "
            f"taken from the {t['budget_hours'].iloc[0]:g} h before the calls a sample are counted.")


def weights_summary(table: pd.DataFrame) -> str:
    """Which rows' weights are published file sizes and which are bits-per-weight estimates."""
    if "weights_source" not in table:
        return ""
    t = table[(table["batch_size"] == 1) & table["family"].eq("llama.cpp")].drop_duplicates(["model", "quantization"])
    files = t[t["weights_source"].isin(["file", "catalog GGUF"])]
    est = t[t["weights_source"].eq("bpw estimate")]
    return (f"GGUF weights: {len(files)} model x type cells from published files (shared/data/gguf_files.yaml, the larger "
            f"file where quantizers differ: {'; '.join(f'{r.model} {r.quantization}: {r.weights_file}' for r in files.itertuples() if 'larger' in r.weights_file) or 'none'}), "
            f"{len(est)} from parameters x bits per weight ({', '.join(f'{r.model} {r.quantization}' for r in est.itertuples()) or 'none'}): "
            "the cells say (file) or (bpw est.); transformers and bitsandbytes cells (params) are parameters x their bits.")


def roofline_figure(m: Predictor, hardware, path: str | Path | None = None, predicted: pd.DataFrame | None = None):
    """Decode tok/s against bytes read per token (log-log): each hardware's roofline
    (bandwidth / bytes, efficiency 1), this lab's measured points and the published points;
    with `predicted` (rows of `answer`), those predictions as crosses with their intervals
    (decode_tok_s_lo to _hi), next to the measured rows."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    x = np.logspace(np.log10(0.05), np.log10(60), 50)
    lines = [roofline.hardware(h, m.peaks) for h in hardware]
    if m.this_machine() is not None:
        lines.append(m.this_machine())
    published = [o for o in m.observations if o.dataset == "published" and o.decode_tok_s]
    seen = {h.key for h in lines}
    lines += [m.hardware_of[k] for k in dict.fromkeys(o.hardware for o in published) if k not in seen]
    colors = dict(zip([h.key for h in lines], plt.cm.tab20(np.linspace(0, 1, max(len(lines), 2)))))
    drawn: dict[float, list[str]] = {}
    for i, h in enumerate(lines):  # cards with the same bandwidth share one line (T4 and 2xT4)
        drawn.setdefault(h.bandwidth_gb_s, []).append(h.label)
    for i, h in enumerate(lines):
        labels = drawn[h.bandwidth_gb_s]
        if labels[0] != h.label:
            continue
        main = i < len(hardware) + 1  # the table's GPUs and this machine: thick; the published cards: thin
        ax.plot(x, h.bandwidth_gb_s / x, lw=2 if main else 0.8, ls="-" if main else "--", color=colors[h.key],
                label=f"{' / '.join(labels)} roofline ({h.bandwidth_gb_s:.0f} GB/s)")
    for o in published:
        ax.scatter(o.bytes_per_token / 1e9, o.decode_tok_s, marker="^", s=28, color=colors[o.hardware],
                   edgecolor="k", lw=0.3, alpha=0.9 if o.fit else 0.35)
    lab = [o for o in m.observations if o.dataset == "lab"]
    for o in lab:
        ax.scatter(o.bytes_per_token / 1e9, o.decode_tok_s, marker="o", s=30, color=colors.get(o.hardware, "k"),
                   edgecolor="k", lw=0.5)
    by_label = {h.label: h.key for h in lines}
    shown = predicted[predicted["model"].notna()] if predicted is not None else pd.DataFrame()
    for r in shown.to_dict("records"):
        x0, y0 = r["bytes_per_token_gb"], r["decode_tok_s"]
        ax.errorbar(x0, y0, yerr=[[y0 - r["decode_tok_s_lo"]], [r["decode_tok_s_hi"] - y0]], fmt="x", ms=8, mew=2,
                    color=colors.get(by_label.get(r["hardware"]), "k"), capsize=3, lw=1)
    if not shown.empty:
        ax.errorbar([], [], yerr=[], fmt="x", color="grey", label="predicted: the Answer (interval)")
    ax.scatter([], [], marker="^", color="grey", label="published (llama.cpp, MLC, exllama, AWQ)")
    ax.scatter([], [], marker="o", color="grey", label="this lab, measured")
    ax.set(xscale="log", yscale="log", xlabel="bytes read per decoded token (GB)", ylabel="decode tokens/s (batch 1)",
           title="Decode speed against the memory-bandwidth roofline", ylim=(0.5, 2000), xlim=(0.05, 60))
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    if path is not None:
        from shared.report.plots import save
        save(fig, path)
    return fig
