"""The offline install (issue 15.3): `make wheelhouse`'s folder installs into a fresh virtual
environment with pip --no-index, and a submission runs from it on the embedded SmolLM2 without
the network (a new network namespace where `unshare` allows it) and without this checkout."""
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from shared.task import dataio
from shared.machine import REPO


def _offline(command: list[str]) -> list[str]:
    """`command` in a network namespace of its own (no network at all), where this user may."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *command]
    return command


@pytest.mark.slow
def test_a_submission_runs_from_the_wheelhouse_offline(tmp_path, wheelhouse):
    wh = wheelhouse
    assert (wh / "install.sh").exists() and list(wh.glob("llama_cpp_python-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PRL_CACHE=str(tmp_path / "cache"))
    installed = subprocess.run(_offline([str(wh / "install.sh"), str(py)]), capture_output=True,
                               text=True, timeout=900, env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]

    pairs = dataio.read_pairs(REPO / "res" / "01_biggest_model" / "validation_qwen.csv").head(3)
    test = dataio.write_csv(pairs.drop(columns=[dataio.PROMPT]), tmp_path / "test.csv")  # as Kaggle's
    out = tmp_path / "submission.csv"
    run = subprocess.run(_offline([str(py), "-c",
                                   "import shared, sys; print('lab from', shared.__file__); "
                                   "from shared.task import submit; sys.exit(submit.main(sys.argv[1:]))",
                                   str(test), "--strategy", "direct", "--model", "smollm2-135m-instruct",
                                   "--backend", "llama_cpp", "--device", "auto", "--n-threads", "2",
                                   "--max-new-tokens", "8", "--out", str(out)]),
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert f"lab from {venv}" in run.stdout                       # the installed lab, not this checkout
    assert "3 computed now" in run.stdout and "running on the CPU" in run.stdout
    assert list(pd.read_csv(out, dtype=str)["id"]) == list(pairs["id"])
    # the minimal set: no torch, no JupyterLab
    absent = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                             "('torch', 'jupyterlab', 'transformers') if u.find_spec(m)])"],
                            capture_output=True, text=True, env=env)
    assert absent.stdout.strip() == "[]"
