"""Iteration 1's answer: which model is fast enough where, from the calibrated roofline model.

Tables for the report and the `roofline` notebook: every candidate x quantization x GPU
predicted (fits in memory, decode tok/s with its calibration and leave-one-out error, seconds
per sample, largest output that fits, verdict); the biggest candidate that fits on each GPU;
this CPU's ladder as measured; and the figure of decode tok/s against bytes per token.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, calibration, peaks, roofline
from .machine import REPO

RESULTS = REPO / "res" / "01_biggest_model"
PEAKS_TABLE = "machine_peaks.jsonl"
HARDWARE = ["P4", "P100", "T4", "2xT4"]
CANDIDATES = ["phi-2", "gemma-2b-it", "llama-2-7b-chat", "mistral-7b-instruct-v0.2", "gemma-7b-it",
              "llama-2-13b-chat", "mixtral-8x7b-instruct-v0.1"]
QUANTIZATIONS = ["fp16", "bnb-8bit", "bnb-4bit", "Q8_0", "Q4_K_M"]
LADDER = ["smollm2-135m-instruct", "gemma-3-270m", "qwen2.5-coder-1.5b-instruct"]
BUDGET_HOURS, SAMPLES = 9.0, 1300
INPUT_TOKENS, OUTPUT_TOKENS = 600, 100


class Model:
    """The calibrated model for one results folder: peaks, observations, fits, LOO errors."""

    def __init__(self, results_dir: str | Path = RESULTS):
        self.results_dir = Path(results_dir)
        self.peaks = peaks.rows(self.results_dir / PEAKS_TABLE)
        self.observations, self.skipped, self.calibrator, self.hardware_of = \
            calibration.calibrate(self.results_dir, self.peaks)
        self.loo = calibration.leave_one_out(self.observations, self.peaks)
        self.errors = calibration.accuracy(self.loo, ["family", "dataset"]) if not self.loo.empty else pd.DataFrame()

    def decode_error(self, family: str, hw: roofline.Hardware, cal: roofline.Calibration) -> float | None:
        """The leave-one-out median decode error of the rows behind `cal` (its family on this
        kind of hardware); None when the calibration is borrowed from another family."""
        if cal.decode_rows.startswith(("no ", "none")) or self.errors.empty:
            return None
        dataset = "lab" if hw.kind == "cpu" else "published"
        hit = self.errors[(self.errors["family"] == family) & (self.errors["dataset"] == dataset)]
        return None if hit.empty else float(hit["decode_tok_s_median_err_pct"].iloc[0])

    def predict(self, model: str, quant: str, hardware: str, input_tokens: int = INPUT_TOKENS,
                output_tokens: int = OUTPUT_TOKENS, budget_s: float = BUDGET_HOURS * 3600 / SAMPLES,
                batch_size: int = 1) -> roofline.Prediction:
        hw = roofline.hardware(hardware, self.peaks)
        q = roofline.quantization(quant)
        cal = self.calibrator.calibration(q.family, hw)
        cal = roofline.Calibration(**{**cal.__dict__, "decode_error_pct": self.decode_error(q.family, hw, cal)})
        return roofline.predict(model, quant, hw, batch_size, input_tokens, output_tokens, budget_s, cal,
                                self.peaks, name=model)

    def this_machine(self) -> roofline.Hardware | None:
        from .machine import info
        try:
            return roofline.hardware(info()["machine"], self.peaks)
        except roofline.RooflineError:
            return None


def fast_enough(m: Model, candidates=CANDIDATES, quantizations=QUANTIZATIONS, hardware=HARDWARE,
                input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS,
                budget_hours=BUDGET_HOURS, samples=SAMPLES) -> pd.DataFrame:
    """One row per candidate x quantization x hardware: the Prediction's fields and verdict."""
    budget_s = budget_hours * 3600 / samples
    rows = [m.predict(model, q, hw, input_tokens, output_tokens, budget_s).row() | {"params_b": roofline.architecture(model).params_total_b}
            for model in candidates for q in quantizations for hw in hardware]
    return pd.DataFrame(rows)


def _cell(r) -> str:
    if r["fits_memory"] is False:
        return f"✗ {r['memory_gb']:.1f} GB > {r['memory_available_gb']:g}"
    mark = "✓" if r["fast_enough"] else "slow"
    return f"{mark} {r['decode_tok_s']:.0f} tok/s, {r['s_per_sample']:.1f} s, {r['memory_gb']:.1f} GB"


def fast_enough_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report shows it: model x quantization rows, one column per GPU."""
    t = table.assign(cell=table.apply(_cell, axis=1))
    grid = t.pivot_table(index=["model", "quantization"], columns="hardware", values="cell", aggfunc="first", sort=False)
    return grid[list(dict.fromkeys(t["hardware"]))].reset_index()


def calibrations(m: Model, table: pd.DataFrame) -> pd.DataFrame:
    """Which rows calibrated each family x hardware of the table, and their LOO error."""
    t = table.drop_duplicates(["family", "hardware"])
    return pd.DataFrame({"family": t["family"], "hardware": t["hardware"],
                         "decode calibrated by": t["decode_calibration"],
                         "LOO median error %": t["decode_error_pct"].round(0),
                         "prefill calibrated by": t["prefill_calibration"]})


def biggest(table: pd.DataFrame) -> pd.DataFrame:
    """Per hardware: the candidate with the most parameters that fits memory and the budget,
    in its fastest fitting quantization among those calibrated on their own runtime's rows
    (a runtime whose calibration is borrowed from another only when no other fits)."""
    ok = table[(table["fits_memory"] != False) & table["fast_enough"]]  # noqa: E712
    rows = []
    for hw in dict.fromkeys(table["hardware"]):
        g = ok[ok["hardware"] == hw]
        if g.empty:
            rows.append({"hardware": hw})
            continue
        g = g[g["params_b"] == g["params_b"].max()].assign(borrowed=lambda d: d["decode_error_pct"].isna())
        top = g.sort_values(["borrowed", "decode_tok_s"], ascending=[True, False]).iloc[0]
        rows.append(top.to_dict())
    return pd.DataFrame(rows)


def biggest_sentences(table: pd.DataFrame) -> str:
    lines = []
    for _, r in biggest(table).iterrows():
        if pd.isna(r.get("model")):
            lines.append(f"- **{r['hardware']}**: no candidate fits.")
            continue
        err = f" (LOO median error of its calibration {r['decode_error_pct']:.0f}%)" if pd.notna(r["decode_error_pct"]) else \
            " (calibration borrowed from another runtime: error unknown)"
        lines.append(f"- **{r['hardware']}**: **{r['model']}** ({r['params_b']:g} B parameters) in {r['quantization']}: "
                     f"{r['memory_gb']:.1f} of {r['memory_available_gb']:g} GB, {r['decode_tok_s']:.0f} tok/s predicted{err}, "
                     f"{r['s_per_sample']:.1f} s a sample of {r['input_tokens']} + {r['output_tokens']} tokens, "
                     f"up to {r['max_output_tokens']} output tokens in the {r['budget_s']:.1f} s budget.")
    return "\n".join(lines)


def cpu_ladder(m: Model, ladder=LADDER, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS,
               budget_hours=BUDGET_HOURS, samples=SAMPLES, predict_also=(("qwen2.5-coder-1.5b-instruct", "Q4_K_M"), ("qwen2.5-coder-1.5b-instruct", "fp32"),
                                                                      ("qwen2.5-coder-1.5b-instruct", "bnb-4bit"),
                                                                      ("phi-2", "Q4_K_M"), ("mistral-7b-instruct-v0.2", "Q4_K_M"))) -> pd.DataFrame:
    """This CPU's ladder: measured configurations (decode from the rows, prefill scaled
    linearly to `input_tokens`) with the LOO prediction beside them, then predicted rows
    (marked) for configurations not measured here."""
    hw = m.this_machine()
    if hw is None:
        return pd.DataFrame()
    budget_s = budget_hours * 3600 / samples
    loo = m.loo[(m.loo["dataset"] == "lab") & (m.loo["hardware"] == hw.label)]
    rows = []
    for config, g in loo.groupby("config", sort=False):
        model, quant = g["model"].iloc[0], g["quantization"].iloc[0]
        if model not in ladder:
            continue
        main = g.loc[(g["input_tokens"] - input_tokens).abs().idxmin()]
        decode = float(g["decode_tok_s_measured"].median())
        prefill = float(main["prefill_s_measured"]) * input_tokens / main["input_tokens"]
        per_sample = prefill + (output_tokens - 1) / decode
        rows.append({"model": model, "quantization": quant, "source": "measured",
                     "decode_tok_s": decode, "loo_predicted_tok_s": float(g["decode_tok_s_predicted"].median()),
                     "loo_err_pct": float(g["decode_tok_s_err_pct"].median()),
                     "prefill_s": prefill, "s_per_sample": per_sample,
                     "max_output_tokens": int(max(0, np.floor(1 + (budget_s - prefill) * decode))),
                     "memory_gb": float(g["memory_gb_measured"].max()),
                     "fast_enough": "yes" if per_sample <= budget_s else "no"})
    measured = {(r["model"], r["quantization"]) for r in rows}
    for model, quant in predict_also:
        if (model, quant) in measured:
            continue
        try:
            p = m.predict(model, quant, hw.key, input_tokens, output_tokens, budget_s)
        except roofline.RooflineError:
            continue
        rows.append({"model": model, "quantization": quant, "source": "predicted",
                     "decode_tok_s": p.decode_tok_s, "loo_predicted_tok_s": None,
                     "loo_err_pct": p.decode_error_pct, "prefill_s": p.prefill_s, "s_per_sample": p.s_per_sample,
                     "max_output_tokens": p.max_output_tokens, "memory_gb": p.memory_gb,
                     "fast_enough": "yes" if p.fast_enough else "no"})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["params_b"] = [roofline.architecture(x).params_total_b for x in df["model"]]
        df = df.sort_values(["source", "params_b", "decode_tok_s"], ascending=[True, True, False]).drop(columns="params_b")
    return df


def loo_summary(m: Model) -> pd.DataFrame:
    """Leave-one-out accuracy on this machine's rows and on the published rows."""
    if m.loo.empty:
        return pd.DataFrame()
    loo = m.loo[m.loo["in_fit"]]
    hw = m.this_machine()
    parts = []
    if hw is not None:
        parts.append(calibration.accuracy(loo[(loo["dataset"] == "lab") & (loo["hardware"] == hw.label)])
                     .assign(rows=f"this machine ({hw.label})"))
    parts.append(calibration.accuracy(loo[loo["dataset"] == "published"]).assign(rows="published (speed_facts.md s4)"))
    out = pd.concat(parts, ignore_index=True)
    return out[["rows", "configs"] + [c for c in out if c.endswith("_pct")]]


def roofline_figure(m: Model, hardware=HARDWARE, path: str | Path | None = None):
    """Decode tok/s against bytes read per token (log-log): each hardware's roofline
    (bandwidth / bytes, efficiency 1), this lab's measured points and the published points."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    x = np.logspace(np.log10(0.05), np.log10(60), 50)
    lines = [roofline.hardware(h, m.peaks) for h in hardware]
    if m.this_machine() is not None:
        lines.append(m.this_machine())
    published = [o for o in m.observations if o.dataset == "published"]
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
    ax.scatter([], [], marker="^", color="grey", label="published (llama.cpp, MLC, exllama, AWQ)")
    ax.scatter([], [], marker="o", color="grey", label="this lab, measured")
    ax.set(xscale="log", yscale="log", xlabel="bytes read per decoded token (GB)", ylabel="decode tokens/s (batch 1)",
           title="Decode speed against the memory-bandwidth roofline", ylim=(0.5, 2000), xlim=(0.05, 60))
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    if path is not None:
        from .plots import save
        save(fig, path)
    return fig
