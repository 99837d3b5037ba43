"""Run a list of configurations, one isolated measurement each, into a results table.

A configuration is a flat dict (model, backend, quantization, ...). `measure(config)` yields
rows; each row is appended to the table as soon as it is yielded, so a configuration that dies
keeps the rows it already measured. A configuration that fails becomes a row with status
"failed" and its reason, and the run goes on:

- a Python exception (out of memory, model missing, quantization unsupported): its type and
  message, with a short traceback;
- a crash of the process (illegal instruction, segmentation fault, abort, the out-of-memory
  killer): "killed by SIGILL (signal 4)", with the end of the process's stderr;
- a hang: "timed out after 1800 s".

Isolation: each configuration runs in a fresh Python interpreter (for backend "vllm" the vLLM
environment's, shared.models.envs; without it the configuration fails saying how to install it) (a
child process started by
exec, as multiprocessing's "spawn" does, never fork, so it works after the parent has
initialized CUDA; not multiprocessing itself, which would re-import the parent's __main__,
the Jupyter kernel's launcher, in every child). Its bootstrap imports only this module;
`measure` travels to it by cloudpickle, which copies a function defined in a notebook cell by
value, with the globals it uses, and imports the modules those name. Cost: the libraries that
`measure` uses are imported again for every configuration (benchmarks/isolation_overhead.py).
A child never outlives its parent (shared.run.lifetime): it is killed when the parent ends by any
means, and a SIGTERM or SIGHUP to the parent kills the child's process group and records the
configuration as interrupted before the parent ends. A rerun skips configurations whose latest
row from this checkout on this machine is ok unless `redo` is set (see results.done_configs).

What counts as the same configuration: its values and the `settings` the notebook measures it
with (max_new_tokens, input_tokens, repetitions, device, dtype, n_threads, ...): each row
records their `settings_hash` (results.settings_hash, as shared.task.submit's sidecar does), and only
rows of the same hash are "already measured", so `-p max_new_tokens 64` after a run measures.
"""
from __future__ import annotations

import collections
import datetime as _dt
import gc
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import cloudpickle

from shared import machine, results
from shared.models import catalog, envs
from shared.run import lifetime
from shared.errors import LabError

if TYPE_CHECKING:  # pandas and tqdm are imported where used: a child starts faster
    import pandas as pd

DEFAULT_TIMEOUT_S = 1800.0  # a hung configuration is stopped after this many seconds
_RECORDED_FAILURE = 86      # child's exit code: measure raised, the child wrote the failed row
_STDERR_TAIL = 1500         # characters of a crashed child's stderr kept in its failed row
# The child interpreter: take the parent's sys.path (after its own environment's entries when it
# is another environment's Python, as .venv-vllm is), die with the parent (shared.run.lifetime),
# then measure one configuration.
_BOOTSTRAP = ("import pickle, sys\n"
              "path, parent, blob = pickle.load(sys.stdin.buffer)\n"
              "sys.path[:] = [p for p in sys.path if p.startswith(sys.prefix) and p not in path] + path\n"
              "from shared.run.lifetime import die_with_parent\n"
              "die_with_parent(parent)\n"
              "from shared.run.experiment import _child_main\n"
              "_child_main(blob)\n")


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


def speed_configs(p: Mapping) -> list[dict]:
    """The speed notebook's configurations from its parameters `p` (all of them: the notebook's
    defaults, shared.run.notebooks.defaults, with a params section over them): model_configs of each
    model with its own quantizations (quantizations_by_model, else quantizations), less the
    "model backend quantization" strings of skip_configs. The notebook, the GPU plan and the
    pre-flight all expand them here."""
    by_model, skip = p.get("quantizations_by_model") or {}, set(p.get("skip_configs") or ())
    return [c for m in p["models"]
            for c in model_configs([m], p["backends"], by_model.get(m, p["quantizations"]))
            if f"{c['model']} {c['backend']} {c['quantization']}" not in skip]


def batch_sizes_of(p: Mapping, config: dict) -> list[int]:
    """The batch sizes the speed notebook times for the batch configuration `config`: its
    backend's own (batch_sizes_by_backend) or batch_sizes, less "batch model backend quantization
    size" strings of skip_configs."""
    skip = set(p.get("skip_configs") or ())
    sizes = (p.get("batch_sizes_by_backend") or {}).get(config["backend"], p.get("batch_sizes") or [])
    return [int(b) for b in sizes
            if f"batch {config['model']} {config['backend']} {config['quantization']} {b}" not in skip]


def batch_configs(p: Mapping) -> list[dict]:
    """The speed notebook's batch configurations from its parameters `p` (as speed_configs):
    batch_models (else models) x their batch backends (batch_backends_by_model, else
    batch_backends), quantization none, with the batch sizes as one "1 8 32" string and
    input_tokens, batch_max_new_tokens; none when batch_sizes is empty."""
    if not p.get("batch_sizes"):
        return []
    by_model = p.get("batch_backends_by_model") or {}
    return [{**c, "batch_sizes": " ".join(str(b) for b in batch_sizes_of(p, c)),
             "input_tokens": p["input_tokens"], "batch_max_new_tokens": p["batch_max_new_tokens"]}
            for m in (p.get("batch_models") or p["models"])
            for c in model_configs([m], by_model.get(m, p["batch_backends"]), ["none"])
            if batch_sizes_of(p, c)]


def run(configs: list[dict], measure: Callable[[dict], Iterable[dict]], path: str | Path,
        redo: bool = False, run_id: str | None = None, desc: str = "configs",
        isolate: bool = True, timeout_s: float | None = DEFAULT_TIMEOUT_S,
        settings: dict | None = None) -> pd.DataFrame:
    """Call `measure(config)` for each config not yet done, appending its rows; return the table.

    isolate: run each configuration in its own child process (True), so that a crash or a hang
        becomes a failed row; False runs it in this process (for debugging; a crash then kills
        the caller, and `measure` may use objects that cannot be pickled, like a loaded model).
    timeout_s: seconds after which an isolated configuration is stopped (None: no limit).
    settings: the parameters every configuration is measured with that are not in the
        configuration itself (max_new_tokens, repetitions, device, ...): their settings_hash is
        part of each row and of what counts as already measured (see the module's docstring).
    Raises LabError, before any configuration runs, when `measure` cannot be sent to a child or
    the table cannot be written (results.check_writable).
    """
    if timeout_s is not None and not timeout_s > 0:
        raise LabError(f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}")
    if isolate:
        _check_picklable(measure)
    results.check_writable(path)  # a read-only results folder stops here, before any model loads
    from tqdm.auto import tqdm

    run_id = run_id or results.new_run_id()
    # the settings' hash: a column of every row (as machine.info's are) and part of its identity
    tag = {} if settings is None else {"settings_hash": results.settings_hash(settings)}
    done = set() if redo or not configs else results.done_configs(path, [*configs[0], *tag])
    counts = {"measured": 0, "skipped": 0, "failed": 0}
    with lifetime.signals_raise():  # SIGTERM, SIGHUP: the child is killed before this process ends
        for config in (bar := tqdm(configs, desc=desc)):
            bar.set_postfix_str(" ".join(str(v) for v in config.values()))
            if (*config.values(), *tag.values()) in done:
                counts["skipped"] += 1
                continue
            base = {**machine.static_info(), **tag}
            try:
                ok = (_run_isolated(measure, config, path, run_id, base, timeout_s) if isolate
                      else _measure_into(measure, config, path, run_id, base))
            except (KeyboardInterrupt, lifetime.Stopped) as stop:  # the run was stopped: say so
                reason = "KeyboardInterrupt" if isinstance(stop, KeyboardInterrupt) else str(stop)
                results.append(path, _failed_row(base, config, f"interrupted ({reason})"), run_id=run_id)
                if isinstance(stop, lifetime.Stopped):
                    lifetime.resend(stop)  # end as the signal would have, the child already dead
                raise
            counts["measured" if ok else "failed"] += 1
            gc.collect()
    print(f"{desc}: {counts['measured']} measured, {counts['skipped']} already measured by this "
          f"checkout (redo=True to measure again), {counts['failed']} failed -> {machine.shown(path)}")
    return results.read(path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _failed_row(base: dict, config: dict, error: str, trace: str | None = None) -> dict:
    return {**base, "timestamp": _now(), **config, "status": "failed", "error": error.strip()[:500],
            "traceback": trace}


def _measure_into(measure, config: dict, path, run_id: str, base: dict) -> bool:
    """Append each row of measure(config) as it comes; on an exception append a failed row.
    Returns True when measure finished."""
    try:
        for row in measure(config):
            results.append(path, {**base, "timestamp": _now(), **row, **config, "status": "ok",
                                  "error": None}, run_id=run_id)
    except Exception as e:  # recorded, not raised: one bad config must not stop the run
        results.append(path, _failed_row(base, config, f"{type(e).__name__}: {e}",
                                         traceback.format_exc(limit=3)[-1500:]), run_id=run_id)
        return False
    return True


def _check_picklable(measure) -> None:
    try:
        cloudpickle.dumps(measure)
    except Exception as e:
        raise LabError(
            f"measure cannot be sent to a child process ({type(e).__name__}: {e}); it probably "
            "uses an object loaded outside it (a model, an open file): load that inside measure, "
            "or pass isolate=False to measure in this process") from e


def _child_main(blob: bytes) -> None:
    """In the child: measure one configuration into the table, then exit without teardown
    (a library that crashes while unloading must not turn finished rows into a failure)."""
    measure, config, path, run_id, base = cloudpickle.loads(blob)
    machine.adopt({k: v for k, v in base.items() if k != "settings_hash"})  # the parent's: no probing again
    ok = _measure_into(measure, config, path, run_id, base)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if ok else _RECORDED_FAILURE)


def _run_isolated(measure, config: dict, path, run_id: str, base: dict,
                  timeout_s: float | None) -> bool:
    """Measure one configuration in a fresh interpreter; record how it ended when it did not
    finish by itself. Returns True when measure finished."""
    blob = cloudpickle.dumps((measure, config, path, run_id, base))
    # Own session: a timeout or an interrupt kills the child and anything it started.
    try:
        python = envs.python_for(config.get("backend"))  # vllm: its own environment's Python
    except LabError as e:
        results.append(path, _failed_row(base, config, f"{type(e).__name__}: {e}"), run_id=run_id)
        return False
    child = subprocess.Popen([python, "-c", _BOOTSTRAP], stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    tail = collections.deque(maxlen=40)  # last stderr lines, for the failed row
    echo = threading.Thread(target=_echo_stderr, args=(child.stderr, tail), daemon=True)
    echo.start()
    code, error = None, None
    try:
        try:
            child.stdin.write(pickle.dumps((sys.path, os.getpid(), blob)))
            child.stdin.close()
        except BrokenPipeError:  # the child died before reading: its exit code says why
            pass
        code = child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout_s:g} s"
    finally:  # also on an interrupt or a stop signal: nothing of this configuration keeps running
        _kill(child)  # the child and whatever it started (they would hold its stderr open)
        echo.join(timeout=5)
    if code == 0:
        return True
    if code == _RECORDED_FAILURE:
        return False
    error = error or _describe_exit(code, tail)
    results.append(path, _failed_row(base, config, error, "".join(tail)[-_STDERR_TAIL:] or None),
                   run_id=run_id)
    return False


def _echo_stderr(stream, tail: collections.deque) -> None:
    """Copy the child's stderr to ours line by line (it shows in the notebook) and keep its end."""
    for raw in stream:
        line = raw.decode(errors="replace")
        sys.stderr.write(line)
        tail.append(line)
    stream.close()


def _kill(child: subprocess.Popen) -> None:
    """SIGKILL the child's process group (the child and what it started); wait for the child."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in it
        pass
    child.wait()


def _describe_exit(code: int, tail: Iterable[str]) -> str:
    """'killed by SIGSEGV (signal 11)' for a signal, else the exit code and the last stderr line."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "a signal"
        hint = ", as the out-of-memory killer does" if -code == signal.SIGKILL else ""
        return f"killed by {name} (signal {-code}){hint}"
    last = next((line.strip() for line in reversed(list(tail)) if line.strip()), "")
    return f"exited with code {code}" + (f": {last}" if last else "")
