"""A stopped run leaves no configuration running: real children, real signals.

A parent runs experiment.run on a configuration that records its pid, sleeps, then appends a
row; the test ends the parent with a signal and checks that the child is gone and that the row
never comes. No model is loaded.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest
import yaml

from shared import results
from shared.machine import REPO

SLEEP_S = 6  # the configuration's sleep before its row: the checks wait past it

MEASURE = f'''
import os, pathlib, time
def measure(config):
    pathlib.Path(config["pidfile"]).write_text(str(os.getpid()))
    time.sleep({SLEEP_S})
    yield {{"late": True}}  # a row appended after the run was stopped
'''


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(path, timeout_s=60.0) -> int:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def default_stop_signals():
    """SIGINT, SIGTERM and SIGHUP back to their default action: a shell that started pytest in
    the background ignores SIGINT, and `nohup` ignores SIGHUP, for every process below it (and
    a run that inherits an ignored SIGHUP rightly goes on: shared.run.lifetime leaves it ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def start(argv, cwd=REPO):
    """A process in its own session (the signal reaches only it), with the stop signals' default
    actions (default_stop_signals)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=default_stop_signals)


def check_gone(child_pid: int, table, started: float):
    """The child dies within seconds, and no row of it appears even after it would have slept."""
    try:
        end = time.monotonic() + 10
        while alive(child_pid) and time.monotonic() < end:
            time.sleep(0.1)
        assert not alive(child_pid), "the configuration's child outlived the stopped run"
        time.sleep(max(0.0, started + SLEEP_S + 2 - time.monotonic()))
        df = results.read(table)
        assert "late" not in df or df["late"].isna().all(), "a row was appended after the stop"
        return df
    finally:
        if alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"])
def test_a_configuration_dies_with_its_stopped_parent(tmp_path, sig):
    table, pidfile = tmp_path / "t.jsonl", tmp_path / "child.pid"
    script = tmp_path / "parent.py"
    script.write_text(MEASURE + textwrap.dedent(f'''
        from shared.run import experiment
        experiment.run([{{"pidfile": {str(pidfile)!r}}}], measure, {str(table)!r})
        '''))
    parent = start([sys.executable, str(script)])
    child = wait_for(pidfile)
    started = time.monotonic()
    parent.send_signal(getattr(signal, sig))
    parent.wait(timeout=30)
    df = check_gone(child, table, started)
    if sig != "SIGKILL":  # a parent that can act records why the configuration has no row
        assert df["status"].tolist() == ["failed"]
        assert df["error"].iloc[0].startswith("interrupted (")
        if sig != "SIGINT":  # ended as the signal would have ended it
            assert parent.returncode == -getattr(signal, sig)


def test_a_stopped_main_job_leaves_no_configuration_running(tmp_path):
    """The issue's case: SIGTERM to the runbook while a notebook's configuration runs in a child
    of the kernel (its own session: the signal to the runbook does not reach it)."""
    it, table, pidfile = tmp_path / "97_stop", tmp_path / "t.jsonl", tmp_path / "child.pid"
    (it / "params").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("table = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(MEASURE + "from shared.run import experiment\n"
                                          f"experiment.run([{{'pidfile': {str(pidfile)!r}}}], measure, table)")]
    nbformat.write(nb, it / "sleeps.ipynb")
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump({"notebooks": ["sleeps"],
                                                            "sleeps": {"table": str(table)}}))
    (it / "README.md").write_text("# Stop\n")
    (it / "report_blocks.py").write_text("BLOCKS = {}\n")
    job = start([sys.executable, "-m", "shared.run.runbook", str(it)])
    child = wait_for(pidfile, timeout_s=120)
    started = time.monotonic()
    job.send_signal(signal.SIGTERM)
    out = job.communicate(timeout=60)[0].decode()
    assert job.returncode == -signal.SIGTERM, out
    assert "main job stopped by SIGTERM" in out
    check_gone(child, table, started)
