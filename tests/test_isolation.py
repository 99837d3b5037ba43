"""Each configuration runs in its own process: a crash or a hang is a failed row, the run goes on.

Real child processes, real signals; no model is loaded, so the whole file takes seconds.
"""
import os
import resource
import signal
import sys
import time

import nbformat
import papermill
import pytest

from shared import results
from shared.report import tables
from shared.run import experiment
from shared.errors import LabError
from shared.machine import REPO


# The measure functions are defined inside the tests, so cloudpickle sends them by value, as it
# does a notebook's: the child does not import this test module (pytest, papermill) first.


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGILL", "SIGABRT", "SIGKILL"])
def test_a_configuration_killed_by_a_signal_is_a_failed_row_and_the_next_one_runs(tmp_path, sig):
    def die_after_one_row(config):
        """Yields one row, then kills its own process with config["signal"] (if any)."""
        yield {"step": 1}
        if config["signal"]:
            print("GGML_ASSERT(about to die) failed", file=sys.stderr)  # a C library's last words
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
            os.kill(os.getpid(), getattr(signal, config["signal"]))
            time.sleep(10)  # not reached: the signal ends the process
        yield {"step": 2}

    path = tmp_path / "t.jsonl"
    configs = experiment.grid(signal=[sig, ""])
    df = experiment.run(configs, die_after_one_row, path)

    crashed, after = df[df["signal"] == sig], df[df["signal"] == ""]
    assert crashed["status"].tolist() == ["ok", "failed"]  # the row measured before the crash is kept
    assert crashed["step"].tolist()[0] == 1
    number = getattr(signal, sig).value
    assert crashed["error"].iloc[-1].startswith(f"killed by {sig} (signal {number})")
    assert "GGML_ASSERT(about to die) failed" in crashed["traceback"].iloc[-1]  # the end of its stderr
    assert after["status"].tolist() == ["ok", "ok"] and after["step"].tolist() == [1, 2]
    assert df["run_id"].nunique() == 1

    # the crashed configuration is not done: a rerun measures it again, skips the other one
    assert results.done_configs(path, ["signal"]) == {("",)}
    assert tables.failures(df.assign(model=df["signal"]))["model"].tolist() == [sig]
    df = experiment.run(configs, die_after_one_row, path)
    assert len(df) == 6 and df["status"].tolist()[-2:] == ["ok", "failed"]


def test_a_hanging_configuration_is_stopped_after_the_timeout(tmp_path):
    def sleep_for(config):
        time.sleep(config["hang_s"])
        yield {"slept_s": config["hang_s"]}

    start = time.perf_counter()
    df = experiment.run(experiment.grid(hang_s=[600, 0]), sleep_for, tmp_path / "t.jsonl", timeout_s=5)
    assert time.perf_counter() - start < 60
    assert df["status"].tolist() == ["failed", "ok"]
    assert df["error"].iloc[0] == "timed out after 5 s"


def test_a_process_that_exits_by_itself_is_a_failed_row_with_its_last_words(tmp_path):
    def measure(config):
        print("fatal: the backend gave up", file=sys.stderr)
        os._exit(3)  # as a C library calling exit(3)
        yield {}

    df = experiment.run([{"model": "m"}], measure, tmp_path / "t.jsonl")
    assert df["error"].tolist() == ["exited with code 3: fatal: the backend gave up"]


def test_an_exception_keeps_its_traceback_and_the_rows_before_it(tmp_path):
    def measure(config):  # a closure: cloudpickle sends it by value
        yield {"x": 1}
        raise RuntimeError(f"CUDA out of memory in {config['model']}")

    df = experiment.run([{"model": "m"}], measure, tmp_path / "t.jsonl")
    assert df["status"].tolist() == ["ok", "failed"]
    assert df["error"].iloc[1] == "RuntimeError: CUDA out of memory in m"
    assert "in measure\n" in df["traceback"].iloc[1]  # where it was raised


def test_a_later_success_clears_a_failure(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [("a", "ok"), ("a", "failed"), ("b", "failed"), ("b", "ok"), ("c", "ok")]
    for model, status in rows:
        results.append(path, {"model": model, "machine": "box", "checkout": "c1", "status": status,
                              "error": None if status == "ok" else "killed by SIGILL (signal 4)"})
    assert results.done_configs(path, ["model"], machine_name="box", checkout="c1") == {("b",), ("c",)}
    assert tables.failures(results.read(path))["model"].tolist() == ["a"]


def test_a_measure_that_cannot_be_pickled_is_refused_before_any_run(tmp_path):
    import threading
    lock = threading.Lock()  # stands for a loaded model held by the notebook

    def measure(config):
        with lock:
            yield {"x": 1}

    with pytest.raises(LabError, match="isolate=False"):
        experiment.run([{"model": "m"}], measure, tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()
    df = experiment.run([{"model": "m"}], measure, tmp_path / "t.jsonl", isolate=False)
    assert df["status"].tolist() == ["ok"]


def test_bad_timeout_is_refused():
    with pytest.raises(LabError, match="timeout_s"):
        experiment.run([{"model": "m"}], print, "unused.jsonl", timeout_s=0)


def test_a_measure_defined_in_a_notebook_cell_runs_isolated(tmp_path):
    table = tmp_path / "nb.jsonl"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"table = {str(table)!r}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os\n"
            "from shared.run import experiment\n"
            "scale = 10  # a notebook global that measure uses\n"
            "def measure(config):\n"
            "    yield {'y': config['x'] * scale, 'pid': os.getpid(), 'kernel_pid': kernel_pid}\n"
            "kernel_pid = os.getpid()\n"
            "df = experiment.run(experiment.grid(x=[1, 2]), measure, table, desc='cell')\n"
            "assert df['status'].eq('ok').all(), df['error']"),
    ]
    nbformat.write(nb, tmp_path / "cell.ipynb")
    papermill.execute_notebook(tmp_path / "cell.ipynb", tmp_path / "out.ipynb", cwd=REPO,
                               progress_bar=False, kernel_name="python3")
    df = results.read(table)
    assert df["y"].tolist() == [10, 20]
    assert (df["pid"] != df["kernel_pid"]).all() and df["pid"].nunique() == 2  # one child each
