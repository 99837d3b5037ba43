"""Run a list of configurations, one isolated measurement each, into a results table.

A configuration is a flat dict (model, backend, quantization, ...). Its rows are appended when
it finishes; a configuration that fails (out of memory, model missing, quantization
unsupported) becomes one row with status "failed" and its reason, and the run goes on. A rerun
skips configurations already measured on this machine unless `redo` is set.
"""
from __future__ import annotations

import gc
import itertools
import traceback
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
from tqdm.auto import tqdm

from . import catalog, machine, results


def grid(**axes) -> list[dict]:
    """Every combination of the given axes, as flat config dicts: grid(model=[..], backend=[..])."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


def model_configs(models: list[str], backends: list[str], quantizations: list[str]) -> list[dict]:
    """The model x backend x quantization grid that makes sense: llama.cpp runs GGUF entries in
    their own quantization; transformers runs every entry with each requested quantization."""
    configs = []
    for model in models:
        spec = catalog.get(model)
        for backend in backends:
            if backend == "llama_cpp":
                if spec.format == "gguf":
                    configs.append({"model": model, "backend": backend, "quantization": spec.quantization})
            else:
                configs += [{"model": model, "backend": backend, "quantization": q} for q in quantizations]
    return configs


def run(configs: list[dict], measure: Callable[[dict], Iterable[dict]], path: str | Path,
        redo: bool = False, run_id: str | None = None, desc: str = "configs") -> pd.DataFrame:
    """Call `measure(config)` for each config not yet done; append its rows; return the table."""
    run_id = run_id or results.new_run_id()
    done = set() if redo or not configs else results.done_configs(path, list(configs[0]))
    counts = {"measured": 0, "skipped": 0, "failed": 0}
    for config in (bar := tqdm(configs, desc=desc)):
        bar.set_postfix_str(" ".join(str(v) for v in config.values()))
        if tuple(config.values()) in done:
            counts["skipped"] += 1
            continue
        try:
            rows = [{**machine.info(), **row, **config, "status": "ok", "error": None}
                    for row in measure(config)]
            counts["measured"] += 1
        except Exception as e:  # recorded, not raised: one bad config must not stop the run
            rows = [{**machine.info(), **config, "status": "failed",
                     "error": f"{type(e).__name__}: {e}".strip()[:500],
                     "traceback": traceback.format_exc(limit=3)[-1500:]}]
            counts["failed"] += 1
        results.append(path, rows, run_id=run_id)
        gc.collect()
    print(f"{desc}: {counts['measured']} measured, {counts['skipped']} already done on this "
          f"machine (redo=True to measure again), {counts['failed']} failed -> {path}")
    return results.read(path)
