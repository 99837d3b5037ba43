"""A yes/no parameter given as text (issue 24; once in tests/test_fault_kinds_24.py)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.run import params
from shared.errors import LabError
from shared.machine import REPO


RES = REPO / "res" / "01_biggest_model"
NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


# --- 24.3 a yes/no parameter given as text --------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), ("FALSE", False),
    ("yes", True), ("No", False), (" no ", False), ("1", True), ("0", False), ("on", True), ("Off", False)])
def test_a_yes_no_parameter_reads_as_typed(value, expected):
    assert params.as_bool("redo", value) is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", 2, None, ["true"], 0.5])
def test_anything_else_stops_naming_the_parameter(value):
    with pytest.raises(LabError, match="parameter 'redo' is yes or no"):
        params.as_bool("redo", value)


@pytest.mark.slow
def test_redo_false_from_the_command_line_keeps_the_set(tmp_path):
    """The reported case (nteract/papermill#396): -p redo false deleted the 24-row set, rc 0."""
    shutil.copy(RES / "validation_qwen.jsonl", tmp_path)
    before = (tmp_path / "validation_qwen.jsonl").read_bytes()
    papermill = str(Path(sys.executable).parent / "papermill")
    command = [papermill, str(NOTEBOOKS / "make_validation_set.ipynb"), str(tmp_path / "out.ipynb"),
               "--cwd", str(REPO), "-p", "results_dir", str(tmp_path), "-p", "set_name", "validation_qwen",
               "-p", "n_samples", "2", "-p", "max_new_tokens", "8"]
    for typed in ("false", "no", "0", "False"):
        done = subprocess.run([*command, "-p", "redo", typed], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (tmp_path / "validation_qwen.jsonl").read_bytes() == before, typed
        assert "was made with max_new_tokens 80, not max_new_tokens 8: reused" in (tmp_path / "out.ipynb").read_text()
    done = subprocess.run([*command, "-p", "redo", "maybe"], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "parameter 'redo' is yes or no" in done.stderr
    assert (tmp_path / "validation_qwen.jsonl").read_bytes() == before


def _make(*args, **variables) -> subprocess.CompletedProcess:
    """`make -n` (print, run nothing) with setup taken as done."""
    return subprocess.run(["make", "-n", "-o", "setup", *args, *(f"{k}={v}" for k, v in variables.items())],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("variable, option", [("REDO", "--redo"), ("PLAN", "--plan"),
                                              ("INCLUDE_UNFIT", "--include-unfit")])
def test_make_reads_yes_no_variables_as_typed(variable, option):
    """`make run REDO=0` and `REDO=false` passed --redo."""
    for value, on in [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False),
                      ("No", False), ("", False)]:
        done = _make("run", **{variable: value})
        line = next(ln for ln in done.stdout.splitlines() if "-m shared run" in ln)
        assert (option in line.split()) is on, (variable, value, line)
    done = _make("run", **{variable: "maybe"})
    assert done.returncode != 0 and f"{variable}=maybe is not yes or no" in done.stderr
    assert "maybe is not yes or no" in _make("test", VLLM="maybe").stderr
    # every target reads them (a fresh user's `make submit ... REDO=maybe` ran the whole job, rc 0)
    for target in ("submit", "report", "kaggle"):
        done = _make(target, DATA="x.csv", KAGGLE_USER="lab-test", **{variable: "maybe"})
        assert done.returncode != 0 and f"{variable}=maybe is not yes or no" in done.stderr, target
