"""What isolating a configuration in its own process costs: seconds per configuration.

experiment.run(isolate=True) starts a fresh interpreter for each configuration, which imports
what `measure` needs (torch, transformers, llama_cpp) again, where an in-process run imported
them once. Prints, per backend, the median wall time of one configuration run isolated and in
this (already warmed-up) process, and the difference: the overhead per configuration, in wall
seconds and in CPU seconds (this process and its children; on a busy machine the CPU seconds
are the steadier estimate of what an idle machine's wall clock would add). The
measure loads SmolLM2-135M-Instruct, generates 4 tokens and closes it, as the notebooks do;
"none" yields one row without loading anything (the bare cost of the child process).

    .venv/bin/python benchmarks/isolation_overhead.py [--reps 3] [--backends none llama_cpp transformers]
"""
import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from shared import machine
from shared.models import loading, timing
from shared.run import experiment


def measure(config):
    if config["backend"] == "none":
        yield {"x": 1}
        return
    lm = loading.load(config["model"], config["backend"], n_threads=machine.usable_cpus())
    try:
        yield timing.generate(lm, prompt="Hello", max_new_tokens=4).row()
    finally:
        lm.close()


def cpu_s():
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def seconds(config, table, isolate):
    """(wall, CPU) seconds of experiment.run on one configuration."""
    start, cpu = time.perf_counter(), cpu_s()
    df = experiment.run([config], measure, table, redo=True, isolate=isolate, desc="overhead")
    assert df["status"].iloc[-1] == "ok", df["error"].iloc[-1]
    return time.perf_counter() - start, cpu_s() - cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=["none", "llama_cpp", "transformers"])
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "overhead.jsonl"
        for backend in args.backends:
            config = {"model": args.model, "backend": backend}
            seconds(config, table, isolate=False)  # warm-up: this process imports the backend once
            runs = {True: [], False: []}
            for _ in range(args.reps):  # alternate, so both share the machine's noise
                for isolate in (True, False):
                    runs[isolate].append(seconds(config, table, isolate))
            (iso, iso_cpu), (inproc, inproc_cpu) = (
                [statistics.median(x) for x in zip(*runs[mode])] for mode in (True, False))
            lines.append(f"{backend:>12}: isolated {iso:5.2f} s, in-process {inproc:5.2f} s: overhead "
                         f"{iso - inproc:+5.2f} s wall, {iso_cpu - inproc_cpu:+5.2f} s CPU per "
                         f"configuration (medians of {args.reps})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
