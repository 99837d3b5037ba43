"""The predictor: the calibrated roofline for a folder of speed rows, and its predictions over a grid.

`Predictor(results_dir)` reads the lab's measured rows and the published ones, fits the roofline's
efficiencies (shared.speed.calibration), keeps the held-out error of each card's column and the
plausibility ceiling, and predicts any model x quantization x hardware x batch size
(`Predictor.predict`, `fast_enough`: memory margin, decode tok/s with its calibration and
interval, prefill and decode seconds a call, calls a sample after loading the model once, the
largest n_ctx; "uncalibrated" with a range where the runtime has no row on the card's
generation, "range" where the card has fewer than two rows of its own, a flag above the
plausibility ceiling). `cpu_ladder` is this CPU's ladder. An iteration's own answer tables and
sentences live beside its notebooks (iterations/01_biggest_model/answer.py).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from shared.speed import calibration, peaks, roofline
from shared.machine import REPO

SPEED_ROWS = REPO / "res" / "01_biggest_model"   # where the lab's speed rows are (Iteration 1 measured them)
PEAKS_TABLE = "machine_peaks.jsonl"
FAMILIES = ("llama.cpp", "transformers", "bitsandbytes")   # the runtimes the lab can ship

def nominal_bits(quant: str) -> int:
    """The bits a quantization is named for: fp16 16, bnb-8bit 8, Q4_K_M 4, IQ2_XS 2."""
    import re
    q = roofline.quantization(quant)
    if q.family == "transformers":
        return int(q.bpw)
    digits = re.findall(r"(\d+)", quant)
    return int(digits[0]) if digits else int(q.bpw)


class Predictor:
    """The calibrated model for one results folder: peaks, observations, fits, held-out errors.

    `hardware`: the table's columns (labels); each column's decode error is the held-out error
    of that card's own rows, one row and one source out (calibration.column_errors); a column
    with fewer than two rows of a runtime is a range from its generation's rows and carries no
    error. `ceiling`: the plausibility ceiling of implied bandwidth efficiency
    (calibration.efficiency_ceiling); a prediction above it is flagged, not fast enough.
    """

    def __init__(self, results_dir: str | Path = SPEED_ROWS, hardware=("T4",)):
        self.results_dir = Path(results_dir)
        self.peaks = peaks.rows(self.results_dir / PEAKS_TABLE)
        self.observations, self.skipped, self.calibrator, self.hardware_of = \
            calibration.calibrate(self.results_dir, self.peaks)
        self.loo = calibration.leave_one_out(self.observations, self.peaks)
        self.errors = calibration.accuracy(self.loo, ["family", "dataset"]) if not self.loo.empty else pd.DataFrame()
        self.card_out = calibration.held_out(self.observations, self.peaks, "card")
        self.source_out = calibration.held_out(self.observations, self.peaks, "source")
        self.columns = calibration.column_errors(self.observations, self.peaks,
                                                 [roofline.hardware(h, self.peaks) for h in hardware])
        self.ceiling = calibration.efficiency_ceiling(self.observations)
        batched_lab = [o for o in calibration.lab_observations(self.results_dir, self.peaks, batched=True)[0]
                       if o.batch_size > 1]
        self.batch_check = calibration.batch_check(self.observations, batched_lab, self.peaks)

    def _column(self, family: str, hw: roofline.Hardware):
        cols = self.columns
        hit = cols[(cols["family"] == family) & (cols["hardware"] == hw.label)] if not cols.empty else cols
        if hit.empty:
            hit = calibration.column_errors(self.observations, self.peaks, [hw], families=(family,))
        return hit.iloc[0]

    def prefill_error(self, family: str, hw: roofline.Hardware) -> float | None:
        """Held-out prefill error % of `family` on `hw`'s generation (one prompt-processing row out)."""
        if hw.kind == "cpu":
            hit = self.errors[(self.errors["family"] == family) & (self.errors["dataset"] == "lab")] \
                if not self.errors.empty else self.errors
            return None if hit.empty or pd.isna(hit["prefill_s_median_err_pct"].iloc[0]) else \
                float(hit["prefill_s_median_err_pct"].iloc[0])
        v = self._column(family, hw)["prefill_err_pct"]
        return None if v is None or pd.isna(v) else float(v)

    def decode_error(self, family: str, hw: roofline.Hardware) -> tuple[float | None, str]:
        """(held-out median decode error %, the rows it belongs to) of `family` on `hw`: the
        column's own rows for a GPU; for this CPU the leave-one-configuration-out median."""
        if hw.kind == "cpu":
            hit = self.errors[(self.errors["family"] == family) & (self.errors["dataset"] == "lab")] \
                if not self.errors.empty else self.errors
            return (None, "no rows") if hit.empty else (float(hit["decode_tok_s_median_err_pct"].iloc[0]),
                                                        f"{family} rows of this CPU, one configuration out")
        r = self._column(family, hw)
        return (None if r["held_out_err_pct"] is None or pd.isna(r["held_out_err_pct"])
                else float(r["held_out_err_pct"])), r["scope"]

    def predict(self, model: str, quant: str, hardware: str, input_tokens: int, output_tokens: int,
                budget_s: float, batch_size: int = 1, n_ctx: int | None = None,
                samples: int | None = None, split: str = "layer") -> roofline.Prediction:
        """roofline.predict with this model's calibration and column errors (decode, prefill);
        `samples`: one model load is taken from the whole budget (roofline.predict).

        split="row" (a multi-GPU card, llama.cpp -sm row / tensor parallel): no public row-split
        row calibrates it (those found are held out), so it is uncalibrated: the range runs from
        the layer split's rate (no gain: the runtime's calibrated efficiency on one card's
        bandwidth) to that efficiency on the cards' summed bandwidth and FLOP/s."""
        hw = roofline.hardware(hardware, self.peaks)
        q = roofline.quantization(quant)
        err, scope = self.decode_error(q.family, hw)
        cal = self.calibrator.calibration(q.family, hw, batch_size=batch_size)
        cal = dataclasses.replace(cal, decode_error_pct=err if cal.calibrated else None, error_scope=scope,
                                  prefill_error_pct=self.prefill_error(q.family, hw))
        if split == "row":
            cal = dataclasses.replace(
                cal, calibrated=False, decode_error_pct=None, prefill_calibrated=False,
                pessimistic_efficiency=cal.decode_efficiency / hw.count, pessimistic_overhead_s=cal.decode_overhead_s,
                pessimistic_unbatched=False,
                prefill_pessimistic_efficiency=(cal.prefill_pessimistic_efficiency or cal.prefill_efficiency) / hw.count,
                prefill_pessimistic_overhead_s=cal.prefill_pessimistic_overhead_s or cal.prefill_overhead_s,
                error_scope="uncalibrated: no public row-split row",
                decode_rows=(f"uncalibrated row split ({hw.count} GPUs: -sm row / tensor parallel): no public row-split "
                             f"{q.family} row on {hw.label}; range from the layer split's rate to the cards' summed "
                             f"bandwidth at the {hw.label} calibration ({cal.decode_rows})"))
        return roofline.predict(model, quant, hw, batch_size, input_tokens, output_tokens, budget_s, cal,
                                self.peaks, name=model, n_ctx=n_ctx, samples=samples, split=split)

    def this_machine(self) -> roofline.Hardware | None:
        from shared.machine import info
        try:
            return roofline.hardware(info()["machine"], self.peaks)
        except roofline.RooflineError:
            return None


def intervals(r: dict, ceiling: float | None) -> dict:
    """A prediction row's intervals and flags (what the answer prints):

    decode_tok_s_lo / _hi: a calibrated cell +- its column's held-out error (none known: the
    point), a range its low and high ends; prefill_s_lo / _hi likewise with the prefill error;
    decode_s: the decode seconds of a call ((output - 1) / decode tok/s); calls_lo / calls_hi:
    the calls a sample at the slow and fast ends (seconds a call from those prefill and decode
    ends, after the model load). `plausible`: the implied bandwidth efficiency is at most
    `ceiling` (None: not checked)."""
    err = (r.get("decode_error_pct") or 0.0) / 100
    perr = (r.get("prefill_error_pct") or 0.0) / 100
    if r["calibrated"]:
        lo, hi = r["decode_tok_s"] * max(1 - err, 0.05), r["decode_tok_s"] * (1 + err)
    else:
        lo, hi = r["decode_tok_s_low"], r["decode_tok_s"]
    p_lo, p_hi = r["prefill_s"] * max(1 - perr, 0.05), r["prefill_s_high"] * (1 + perr)
    n = r["output_tokens"] - 1
    slow, fast = (p_hi + n / lo) / r["batch_size"], (p_lo + n / hi) / r["batch_size"]
    net = r["budget_net_s"]
    return {"decode_tok_s_lo": lo, "decode_tok_s_hi": hi, "prefill_s_lo": p_lo, "prefill_s_hi": p_hi,
            "decode_s": n / r["decode_tok_s"], "decode_s_hi": n / lo,
            "calls_lo": max(0, int(net // slow)), "calls_hi": max(0, int(net // fast)),
            "plausible": True if ceiling is None else bool(r["implied_efficiency"] <= ceiling),
            "efficiency_ceiling": ceiling}


def fast_enough(m: Predictor, candidates, quantizations, hardware, input_tokens: int, output_tokens: int,
                budget_hours: float, samples: int, batch_sizes=(1,), n_ctx: int | None = None,
                splits: bool = False) -> pd.DataFrame:
    """One row per candidate x quantization x hardware x batch size: the Prediction's fields,
    its verdict, the model's parameters and the quantization's nominal bits and perplexity cost,
    and its intervals (`intervals`, with the model's plausibility ceiling where it has one).
    Each row's calls a sample count what is left after loading that model once
    (`load_s`, `budget_net_s`; roofline.predict with `samples`). `splits`: for a multi-GPU card
    and llama.cpp at batch 1, a second row with the row split (split "row", uncalibrated)."""
    if budget_hours <= 0 or samples < 1:
        raise roofline.RooflineError(f"budget_hours must be > 0 and samples >= 1, got {budget_hours}, {samples}")
    budget_s = budget_hours * 3600 / samples
    ceiling = getattr(m, "ceiling", None)
    rows = []
    for model in candidates:
        params_b = roofline.architecture(model).params_total_b
        for q in quantizations:
            extra = {"params_b": params_b, "bits": nominal_bits(q), "ppl_delta": roofline.quantization(q).ppl_delta,
                     "budget_hours": budget_hours, "samples": samples}
            for hw in hardware:
                multi = roofline.hardware(hw, getattr(m, "peaks", None)).count > 1
                for b in batch_sizes:
                    ways = ["layer", "row"] if splits and multi and b == 1 and roofline.quantization(q).family == "llama.cpp" \
                        else ["layer"]
                    for split in ways:
                        kw = {"split": split} if split != "layer" else {}
                        r = m.predict(model, q, hw, input_tokens, output_tokens, budget_s, b, n_ctx, samples, **kw).row()
                        rows.append(r | intervals(r, ceiling) | extra)
    return pd.DataFrame(rows)


def cpu_ladder(m: Predictor, ladder, input_tokens: int, output_tokens: int,
               budget_hours: float, samples: int, predict_also=(("qwen2.5-coder-1.5b-instruct", "Q4_K_M"), ("qwen2.5-coder-1.5b-instruct", "fp32"),
                                                                      ("qwen2.5-coder-1.5b-instruct", "bnb-4bit"),
                                                                      ("phi-2", "Q4_K_M"), ("mistral-7b-instruct-v0.2", "Q4_K_M"))) -> pd.DataFrame:
    """This CPU's ladder: measured configurations (decode from the rows at the input length
    nearest `input_tokens`, as the speed table's; prefill scaled linearly to `input_tokens`) with the LOO prediction beside them, then predicted rows
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
        main = g.loc[(g["input_tokens"] - input_tokens).abs().idxmin()]  # the rows nearest the input
        near = g[g["input_tokens"] == main["input_tokens"]]                # (decode slows as the context grows)
        decode = float(near["decode_tok_s_measured"].median())
        prefill = float(main["prefill_s_measured"]) * input_tokens / main["input_tokens"]
        per_sample = prefill + (output_tokens - 1) / decode
        rows.append({"model": model, "quantization": quant, "source": "measured",
                     "decode_tok_s": decode, "loo_predicted_tok_s": float(near["decode_tok_s_predicted"].median()),
                     "loo_err_pct": float(near["decode_tok_s_err_pct"].median()),
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


def loo_summary(m: Predictor) -> pd.DataFrame:
    """Leave-one-out accuracy on this machine's rows and on the published rows."""
    if m.loo.empty:
        return pd.DataFrame()
    loo = m.loo[m.loo["in_fit"]]
    hw = m.this_machine()
    parts = []
    if hw is not None:
        parts.append(calibration.accuracy(loo[(loo["dataset"] == "lab") & (loo["hardware"] == hw.label)])
                     .assign(rows=f"this machine ({hw.label})"))
    parts.append(calibration.accuracy(loo[loo["dataset"] == "published"]).assign(rows="published (shared/data/speed_facts.md s4)"))
    out = pd.concat(parts, ignore_index=True)
    return out[["rows", "configs"] + [c for c in out if c.endswith("_pct")]]


def held_out_summary(m: Predictor, families=FAMILIES) -> pd.DataFrame:
    """Median and worst held-out decode error of the published GPU rows, per runtime family:
    leaving one card out and leaving one source out (batch-1 rows in the fit only)."""
    parts = []
    for name, frame in (("one card out", m.card_out), ("one source out", m.source_out)):
        ok = frame[frame["in_fit"] & frame["batch_size"].eq(1) & frame["family"].isin(families)]
        for family, g in ok.groupby("family"):
            per_config = g.groupby("config")["decode_tok_s_err_pct"].median()
            parts.append({"held out": name, "family": family, "configs": len(per_config),
                          "predicted": int(per_config.notna().sum()),
                          "median_err_pct": per_config.median(), "worst_err_pct": per_config.max()})
    return pd.DataFrame(parts)
