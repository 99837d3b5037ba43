"""Roofline model accuracy: leave-one-out predictions against every measured and published row.

Prints, for every configuration measured on this machine (res/01_biggest_model/speed.jsonl and
length_scaling.jsonl, one line per input / output length) and every published row
(shared/data/published_speeds.yaml): measured and predicted decode tok/s (prefill seconds and
memory where measured), the absolute percentage error, and which rows calibrated the
prediction; then the median and worst error of each set. Each configuration is predicted by
constants fitted without it (shared.speed.calibration.leave_one_out); then the published GPU rows
held out a card at a time and a source at a time (shared.speed.calibration.held_out), the error each
Kaggle GPU column carries (column_errors), and the batched rows predicted from batch-1 constants.
Needs this machine's peaks in
res/01_biggest_model/machine_peaks.jsonl (the roofline notebook measures them; --measure here).

    .venv/bin/python benchmarks/roofline_accuracy.py [--results res/01_biggest_model] [--measure]
"""
import argparse

import pandas as pd

from shared import machine
from shared.speed import calibration, peaks, predictor
from shared.machine import REPO


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(REPO / "res" / "01_biggest_model"))
    parser.add_argument("--measure", action="store_true", help="measure this machine's peaks first if missing")
    parser.add_argument("--threads", type=int, default=machine.usable_cpus(),
                        help="default: the CPUs this process may use (its affinity)")
    args = parser.parse_args()
    if args.measure:
        peaks.ensure(f"{args.results}/{predictor.PEAKS_TABLE}", threads=args.threads)
    m = predictor.Predictor(args.results, hardware=("P4", "P100", "T4", "2xT4"))
    here = machine.info()["machine"]
    hw = m.this_machine()
    if hw is None:
        print(f"no measured peaks for {here}: run with --measure (or the roofline notebook); "
              "only the published rows follow")
    for line in m.skipped:
        print("not used:", line)
    loo = m.loo
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 48)
    sets = [("published rows", loo[loo["dataset"] == "published"])]
    if hw is not None:
        sets.insert(0, (f"this machine ({hw.label})", loo[(loo["dataset"] == "lab") & (loo["hardware"] == hw.label)]))
    for title, rows in sets:
        print(f"\n== {title}: {rows['config'].nunique()} configurations, {len(rows)} rows")
        cols = ["config", "input_tokens", "output_tokens", "decode_tok_s_measured", "decode_tok_s_predicted",
                "decode_tok_s_err_pct", "prefill_s_measured", "prefill_s_predicted", "prefill_s_err_pct",
                "memory_gb_measured", "memory_gb_predicted", "memory_gb_err_pct", "in_fit"]
        print(rows[[c for c in cols if rows[c].notna().any()]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        for _, a in calibration.accuracy(rows[rows["in_fit"]]).iterrows():
            for metric in ("decode_tok_s", "prefill_s", "memory_gb"):
                med, worst = a[f"{metric}_median_err_pct"], a[f"{metric}_worst_err_pct"]
                if pd.notna(med):
                    print(f"  {metric}: median abs error {med:.1f}%, worst {worst:.1f}% over {a['configs']} "
                          "configurations (leave one configuration out; rows the source marks compute-bound excluded)")
        for config in rows["config"].unique()[:3]:
            print(f"  e.g. {config}: calibrated by {rows[rows['config'] == config]['calibrated_by'].iloc[0]}")
    print("\n== published GPU rows held out a card / a source at a time (batch 1, in the fit)")
    print(predictor.held_out_summary(m).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("\n== the held-out error each Kaggle column carries")
    print(m.columns.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("\n== batched rows predicted by batch-1 constants")
    print(m.batch_check.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
