"""Did this run reproduce the rows that were there? The main job's closing table.

A fresh clone's main job measures everything again (its rows are not this checkout's, see
results.done_configs). This module compares what the run appended with the rows that were in
the tables before it started (in a fresh clone: the committed rows), for the same machine label
(machine.machine_label: "AMD EPYC 2c") and CPU vector extension (machine.row_isa: an AVX-512 and
an AVX2 EPYC share that label, not their speed), one line per configuration and headline metric:

- before: the median of the earlier rows' values, and their spread (lowest and highest value,
  as a ratio to that median), the spread the rows themselves show;
- this run: the median of the new rows' values, and its ratio to `before`;
- flag "outside" when this run's median is outside the earlier rows' [lowest, highest].

A metric is compared per row (a timed repetition: decode tok/s, prefill tok/s, peak memory) or
per run (`per="run"`: the mean over a run's rows, as the SCS of a strategy over its pairs).
The iteration says which tables and metrics count: HEADLINES in its report_blocks.py.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from shared import machine, results
from shared.report import tables

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class Headline:
    """The headline metrics of one results table.

    table: the JSON-lines file; keys: the columns naming a configuration; metrics: name ->
    column, or a function of the DataFrame giving a Series; where: column -> value the compared
    rows must have (e.g. {"phase": "timed"}); per: "row" or "run" (the mean over each run_id).
    """
    table: Path
    keys: tuple[str, ...]
    metrics: dict[str, str | Callable[["pd.DataFrame"], "pd.Series"]]
    where: dict = dataclasses.field(default_factory=dict)
    per: str = "row"


def snapshot(headlines: list[Headline]) -> dict[Path, set]:
    """The run ids already in each table: what is there before the run."""
    out = {}
    for h in headlines:
        df = results.read(h.table)
        out[h.table] = set(df["run_id"].dropna()) if "run_id" in df else set()
    return out


def _units(h: Headline, df: "pd.DataFrame") -> "pd.DataFrame":
    """Rows (or per-run means) of `df` that count, with one column per metric."""
    import pandas as pd

    if df.empty or not set(h.keys) <= set(df):
        return pd.DataFrame()
    if "status" in df:
        df = df[df["status"].eq("ok")]
    for column, value in h.where.items():
        df = df[df[column].eq(value)] if column in df else df.iloc[0:0]
    values = {name: (df[m] if isinstance(m, str) and m in df else
                     m(df) if callable(m) else pd.Series(float("nan"), index=df.index))
              for name, m in h.metrics.items()}
    out = pd.concat([df[list(h.keys) + ["run_id"]].astype(str), pd.DataFrame(values).astype(float)], axis=1)
    if h.per == "run":
        out = out.groupby(list(h.keys) + ["run_id"], as_index=False).mean()
    return out


def compare(headlines: list[Headline], before: dict[Path, set], label: str | None = None,
            isa: str | None = None) -> "pd.DataFrame":
    """One row per configuration and metric that this run measured: before (median, n, spread),
    this run (median), ratio, flag. Only rows of machines with the short label `label` and CPU
    vector extension `isa` (defaults: this machine's) count on either side."""
    import pandas as pd

    label = label or machine.machine_label(machine.info()["machine"])
    isa = isa if isa is not None else machine.info().get("cpu_isa", "")
    lines = []
    for h in headlines:
        df = results.read(h.table)
        if df.empty or "run_id" not in df or "machine" not in df:
            continue
        df = df[df["machine"].map(machine.machine_label).eq(label)]
        if isa and not df.empty:  # a row that cannot say which CPU measured it proves nothing here
            df = df[[machine.row_isa(r) == isa for r in df.to_dict("records")]]
        new = df["run_id"].isin(set(df["run_id"].dropna()) - before.get(h.table, set()))
        old_units, new_units = _units(h, df[~new]), _units(h, df[new])
        if new_units.empty:
            continue
        for config, mine in new_units.groupby(list(h.keys)):
            config = config if isinstance(config, tuple) else (config,)
            earlier = (old_units[(old_units[list(h.keys)] == list(config)).all(axis=1)]
                       if not old_units.empty else old_units)
            for metric in h.metrics:
                now = mine[metric].dropna()
                then = earlier[metric].dropna() if not earlier.empty else pd.Series(dtype=float)
                if now.empty:
                    continue
                line = {"table": h.table.stem, "configuration": " ".join(config), "metric": metric,
                        "before": float("nan"), "before_n": len(then), "spread": "",
                        "this_run": now.median(), "ratio": float("nan"), "flag": "no earlier rows"}
                if not then.empty:
                    median, low, high = then.median(), then.min(), then.max()
                    inside = low - 1e-9 * abs(low) <= line["this_run"] <= high + 1e-9 * abs(high)
                    line.update(before=median, ratio=line["this_run"] / median if median else float("nan"),
                                spread=f"{low / median:.2f}-{high / median:.2f}x" if median else "",
                                flag="" if inside else "outside")
                lines.append(line)
    return pd.DataFrame(lines)


def markdown(table: "pd.DataFrame", label: str | None = None) -> str:
    """The comparison as text for the end of the main job."""
    label = label or machine.machine_label(machine.info()["machine"])
    if table.empty:
        return (f"reproduction ({label}): this run measured nothing new; configurations this "
                "checkout already measured are skipped (REDO=1 measures them again)")
    outside = int(table["flag"].eq("outside").sum())
    isa = machine.info().get("cpu_isa", "")
    head = (f"reproduction: this run against the earlier rows of {label}{f' ({isa})' if isa else ''} (a fresh clone's: the "
            f"committed ones); {outside} of {len(table)} outside the spread the earlier rows show")
    shown = table.rename(columns={"before_n": "n before", "this_run": "this run",
                                  "spread": "spread before"})
    return head + "\n" + tables.markdown(shown, floatfmt=".3g")
