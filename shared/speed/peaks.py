"""This machine's roofline: memory bandwidth and matmul FLOP/s, measured, stored as rows.

Bandwidth is a STREAM-like kernel (McCalpin's STREAM: copy a = b, triad a = b + s*c; bytes
counted as STREAM does, 2 and 3 arrays of 8-byte words per element; best of the repetitions)
on arrays far larger than the caches, run by torch with the threads the lab's runs use
(numpy's element-wise kernels are single-threaded). Matmul FLOP/s is fp32 torch.matmul on
square matrices, 2 n^3 FLOPs each; torch ships its own BLAS, so OPENBLAS_CORETYPE (which
slows numpy's OpenBLAS here) does not touch it. Other processes on the same cores lower both
numbers: the row keeps the 1-minute load average next to them. One row per measurement in
res/<iteration>/machine_peaks.jsonl, with the machine like every result row.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from shared import machine, results


def _best_seconds(fn, repetitions: int) -> float:
    fn()  # warm-up: page faults, thread pool start
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def stream(threads: int, array_mb: int = 512, repetitions: int = 5) -> dict:
    """Copy and triad bandwidth in GB/s (1e9 bytes/s) on float64 arrays of `array_mb` MB each."""
    import torch
    torch.set_num_threads(threads)
    n = array_mb * 10**6 // 8
    a, b, c = torch.zeros(n, dtype=torch.float64), torch.rand(n, dtype=torch.float64), torch.rand(n, dtype=torch.float64)
    copy_s = _best_seconds(lambda: a.copy_(b), repetitions)
    triad_s = _best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), repetitions)
    return {"array_mb": array_mb, "copy_gb_s": 2 * 8 * n / copy_s / 1e9, "triad_gb_s": 3 * 8 * n / triad_s / 1e9}


def matmul(threads: int, n: int = 2048, repetitions: int = 5) -> dict:
    """fp32 torch.matmul of two n x n matrices, in TFLOP/s (2 n^3 FLOPs)."""
    import torch
    torch.set_num_threads(threads)
    x, y = torch.rand(n, n), torch.rand(n, n)
    seconds = _best_seconds(lambda: torch.matmul(x, y), repetitions)
    return {"matmul_n": n, "matmul_fp32_tflops": 2 * n**3 / seconds / 1e12,
            "matmul_library": f"torch {torch.__version__} matmul ({torch.backends.cpu.get_cpu_capability()})"}


def memory_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def measure(threads: int | None = None, array_mb: int = 512, matmul_n: int = 2048,
            repetitions: int = 5) -> dict:
    """One row: this machine's bandwidth and fp32 matmul peak with `threads` threads (unset:
    the CPUs this process may use, machine.usable_cpus)."""
    threads = threads or machine.usable_cpus()
    return {**machine.info(), "threads": threads, **stream(threads, array_mb, repetitions),
            **matmul(threads, matmul_n, repetitions), "memory_total_gb": memory_total_gb(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""), "repetitions": repetitions,
            "load_avg_1min": os.getloadavg()[0],  # other processes on the cores lower every number
            "status": "ok"}


def contended(row: dict) -> bool:
    """Whether other processes shared the cores while `row` was measured: a 1-minute load
    average above the measurement's own threads plus one."""
    return float(row.get("load_avg_1min") or 0) > float(row["threads"]) + 1


def ensure(path: str | Path, threads: int | None = None, redo: bool = False, **kwargs) -> list[dict]:
    """Every machine's peaks in `path` (see rows), measuring this machine first unless it
    already has an uncontended row with these threads measured by this checkout (like
    shared.run.experiment.run skips done configurations: a fresh clone measures its own; a
    measurement taken on shared cores is taken again). threads unset: the CPUs this process
    may use (machine.usable_cpus)."""
    threads = threads or machine.usable_cpus()
    info = machine.info()
    mine = [r for r in rows(path, checkout=info["checkout"])
            if r["machine"] == info["machine"] and r["threads"] == threads]
    if redo or not mine or contended(mine[0]):
        results.append(path, measure(threads, **kwargs), run_id=results.new_run_id())
    return rows(path)


def rows(path: str | Path, checkout: str | None = None) -> list[dict]:
    """One peaks row per machine and thread count in `path`: the least contended (lowest load
    average), the latest among equals; only rows of `checkout` when given."""
    df = results.read(path)
    if checkout is not None:
        df = df[df["checkout"].eq(checkout)] if "checkout" in df else df.iloc[0:0]
    if df.empty:
        return []
    df = df[df["status"].eq("ok")].reset_index(drop=True)
    load = df["load_avg_1min"] if "load_avg_1min" in df else 0
    df = df.assign(_load=load, _order=range(len(df))).sort_values(["_load", "_order"], ascending=[True, False])
    return df.drop_duplicates(["machine", "threads"], keep="first").drop(columns=["_load", "_order"]).to_dict("records")
