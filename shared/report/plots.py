"""Figures for the reports: seaborn, saved as PNG with content names, returned for display."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from shared.report.tables import SCALING_CURVES, with_model_memory
from shared.results import numeric, ok_timed

sns.set_theme(style="whitegrid", context="notebook")


def save(fig, path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _nothing(path: str | Path, what: str):
    """A figure saying there is nothing to plot (every value undefined), saved like the others."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.text(0.5, 0.5, f"{what}: no defined values to plot", ha="center", va="center")
    ax.axis("off")
    return save(fig, path)


def _label(df: pd.DataFrame) -> pd.Series:
    return df["runtime"] + " | " + df["machine"].str.slice(0, 28)


def speed_bars(df: pd.DataFrame, path: str | Path):
    """Prefill and decode tokens/s per model, one bar per runtime and machine (median, IQR)."""
    d = numeric(ok_timed(df), ["input_tokens", "prefill_s", "decode_tok_s"])
    d = d.assign(setup=_label, prefill_tok_s=lambda x: x["input_tokens"] / x["prefill_s"])
    d = d.melt(id_vars=["model", "setup"], value_vars=["prefill_tok_s", "decode_tok_s"],
               var_name="phase", value_name="tokens/s").dropna(subset=["tokens/s"])  # undefined: no bar
    if d.empty:
        return _nothing(path, "tokens/s")
    g = sns.catplot(data=d, kind="bar", x="tokens/s", y="model", hue="setup", col="phase",
                    col_order=["prefill_tok_s", "decode_tok_s"], sharex=False, estimator="median", errorbar=("pi", 50), height=3.2, aspect=1.4)
    g.set_titles("{col_name}")
    return save(g.figure, path)


def scaling(df: pd.DataFrame, sweep: str, path: str | Path):
    """One sweep of the length-scaling notebook: the measured points and a fitted line each
    (memory: the model's share, empty for rows older than that field)."""
    d = with_model_memory(ok_timed(df))
    d = d[d["sweep"] == sweep].assign(setup=lambda x: x["model"] + " · " + x["runtime"])
    curves = [(x, y) for s, x, y, _ in SCALING_CURVES if s == sweep]
    x = curves[0][0]
    long = d.melt(id_vars=["setup", x], value_vars=[y for _, y in curves], var_name="metric")
    long = numeric(long, ["value", x]).dropna(subset=["value", x])  # undefined: no point
    if long.empty:
        return _nothing(path, f"{sweep} sweep")
    g = sns.lmplot(data=long, x=x, y="value", hue="setup", col="metric", col_order=[y for _, y in curves],
                   ci=None, height=3.2,
                   aspect=1.2, facet_kws={"sharey": False}, scatter_kws={"s": 18})
    g.set_titles("{col_name}")
    return save(g.figure, path)


def eos_bars(df: pd.DataFrame, path: str | Path):
    """Output tokens and seconds per prompt: stopping at EOS against ignoring it."""
    d = df[df["status"].eq("ok")].assign(setup=lambda x: x["model"] + " · " + x["runtime"])
    long = d.melt(id_vars=["setup", "mode"], value_vars=["output_tokens", "total_s"], var_name="metric")
    long = numeric(long, ["value"]).dropna(subset=["value"])  # undefined: no bar
    if long.empty:
        return _nothing(path, "output tokens and seconds")
    g = sns.catplot(data=long, kind="bar", x="value", y="setup", hue="mode", col="metric",
                    col_order=["output_tokens", "total_s"], sharex=False, estimator="mean", errorbar="sd", height=3.0, aspect=1.5)
    g.set_titles("{col_name} per prompt")
    return save(g.figure, path)


def scs_bars(df: pd.DataFrame, path: str | Path):
    """SCS per strategy (mean and 95% CI over pairs), labelled with the encoder used."""
    df = numeric(df, ["scs"]).dropna(subset=["scs"])  # undefined: no bar
    if df.empty:
        return _nothing(path, "SCS")
    encoder = ", ".join(sorted(df["encoder"].dropna().astype(str).unique())) or "encoder unknown"
    g = sns.catplot(data=df, kind="bar", x="scs", y="strategy", hue="model", errorbar=("ci", 95),
                    height=3.0, aspect=1.8)
    g.set_axis_labels(f"SCS (cos^3, {encoder})", "")
    return save(g.figure, path)
