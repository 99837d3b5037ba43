"""The Kaggle submission as Kaggle runs it (issue 25): `make kaggle`'s upload folders, and the
generated notebook executed by papermill with a kernel of a fresh Python that has nothing of the
lab, which installs it from the wheelhouse dataset with pip --no-index, without the network, from
a read-only input folder laid out as /kaggle/input/<dataset slug>/, writing into a working folder.

How the notebook's process is cut off, where this machine allows it (`_isolation`): `unshare`
gives papermill and its kernel a network namespace of their own (only the loopback, brought up
for the kernel's ZMQ sockets) and a mount namespace in which the input folder is bind-mounted
read-only, which holds for root too; as root (CI, this lab) `unshare -m -n`, else as a user
`unshare -r -m -n`. Where neither works, a non-root user gets `chmod -R a-w` (effective for
non-root) and the network is kept out only by pip's settings (--no-index, PIP_CONFIG_FILE=/dev/null,
PIP_NO_INDEX=1); the run itself probes both (a write into the input folder, a connection out)
and the test says which held.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest

from shared.models import catalog
from shared.run import notebooks
from shared.task import dataio, submit
from shared.errors import LabError
from shared.machine import REPO

sys.path.insert(0, str(REPO / "scripts"))
import make_kaggle  # noqa: E402
import wheelhouse_build_info as build_info  # noqa: E402

SMOL = "smollm2-135m-instruct"

# Inside the namespaces: the loopback for the kernel, the input read-only, then probes that
# print what held, then papermill. $1: the input folder, $2: the fresh Python, then the command.
RUNNER = r"""
set -eu
IN=$1; PY=$2; shift 2
if [ "$MODE" = namespaces ]; then
    ip link set lo up
    mount --bind "$IN" "$IN" && mount -o remount,bind,ro "$IN"
fi
if touch "$IN/.probe" 2>/dev/null; then rm -f "$IN/.probe"; echo "probe: input WRITABLE"; else echo "probe: input read-only"; fi
if "$PY" -c 'import socket; socket.create_connection(("1.1.1.1", 443), 3)' 2>/dev/null; then
    echo "probe: network REACHABLE"; else echo "probe: network unreachable"; fi
exec "$@"
"""


def _isolation() -> tuple[str, list[str]]:
    """("namespaces", the unshare command) where unshare may make network and mount namespaces
    (and `ip` is there to bring up the loopback), else ("chmod", [])."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    for flags in (["-m", "-n"], ["-r", "-m", "-n"]):
        if unshare and ip and subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0:
            return "namespaces", [unshare, *flags]
    return "chmod", []


def _tree(folder: Path) -> dict:
    """Every file under `folder` with its size and modification time: what a write would change."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _parameters(path: Path) -> dict:
    """The defaults of a notebook's parameters cell (.py or .ipynb), executed."""
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    exec(cell.source, {}, values)
    return values


def _fresh_python(folder: Path) -> Path:
    """A new virtual environment with only what Kaggle's image brings for a notebook: a Jupyter
    kernel (ipykernel, installed with the network before anything runs offline)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    py = folder / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "ipykernel"],
                   check=True, timeout=600, capture_output=True)
    return py


def run_as_kaggle(notebook: Path, upload: Path, test: pd.DataFrame, tmp: Path,
                  parameters: dict) -> tuple[subprocess.CompletedProcess, Path, str]:
    """Execute `notebook` as Kaggle does: datasets of the `upload` folders mounted read-only under
    <tmp>/kaggle/input/<slug> (the slug of each dataset-metadata.json id), the competition's
    test.csv in input/llm-prompt-recovery, the working folder <tmp>/kaggle/working, a kernel of a
    fresh Python, no network. Returns (papermill's process, the working folder, the isolation)."""
    root = tmp / "kaggle"
    inp, work = root / "input", root / "working"
    work.mkdir(parents=True)
    for folder in ("wheels", "model"):
        slug = json.loads((upload / folder / "dataset-metadata.json").read_text())["id"].split("/")[1]
        shutil.copytree(upload / folder, inp / slug, copy_function=os.link)
    (inp / make_kaggle.COMPETITION).mkdir()
    dataio.write_csv(test, inp / make_kaggle.COMPETITION / "test.csv")

    py = _fresh_python(tmp / "kaggle-python")
    kernels = tmp / "jupyter" / "kernels" / "kaggle-python"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle's Python", "language": "python"}))
    mode, prefix = _isolation()
    if mode == "chmod":
        subprocess.run(["chmod", "-R", "a-w", str(inp)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MODE=mode, HOME=str(tmp / "home"),
               JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               PRL_CACHE=str(tmp / "home" / ".cache" / "prompt-recovery-lab"))
    params = [a for k, v in {"input_dir": str(inp), "out": str(work / "submission.csv"), **parameters}.items()
              for a in ("-p", k, str(v))]
    command = [*prefix, "bash", "-c", RUNNER, "runner", str(inp), str(py),
               sys.executable, "-m", "papermill", str(notebook), str(work / "executed.ipynb"),
               "-k", "kaggle-python", "--cwd", str(work), "--no-progress-bar", *params]
    before = _tree(inp)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=work)
    finally:
        if mode == "chmod":
            subprocess.run(["chmod", "-R", "u+w", str(inp)])
    assert _tree(inp) == before, "the notebook changed its input folder"
    return done, work, mode


def _shown(executed: Path) -> str:
    nb = nbformat.read(executed, as_version=4)
    return "".join(o.get("text", "") + "".join(map(str, o.get("data", {}).values())) + "".join(o.get("traceback", []))
                   for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_the_kaggle_notebook_runs_as_kaggle_runs_it(tmp_path, wheelhouse):
    upload = tmp_path / "upload"
    shutil.copytree(wheelhouse, upload / "wheels", copy_function=os.link)
    made = make_kaggle.make(upload, "lab-test", SMOL)  # the notebook's defaults: device cuda
    assert made["model"].startswith(catalog.get(SMOL).source["file"])

    # the metadata the kaggle CLI reads (Kaggle/kaggle-api docs/*_metadata.md)
    kernel = json.loads((upload / "notebook" / "kernel-metadata.json").read_text())
    assert kernel["code_file"] == "submission.ipynb" and (upload / "notebook" / "submission.ipynb").exists()
    assert kernel["enable_gpu"] is True and kernel["enable_internet"] is False
    assert kernel["dataset_sources"] == ["lab-test/prompt-recovery-lab-wheels", "lab-test/prompt-recovery-lab-model"]
    assert kernel["competition_sources"] == ["llm-prompt-recovery"] and kernel["kernel_type"] == "notebook"
    gpu = json.loads((upload / "build-gpu" / "kernel-metadata.json").read_text())
    assert gpu["enable_gpu"] is True and gpu["enable_internet"] is True
    built = jupytext.read(upload / "build-gpu" / gpu["code_file"])
    assert _parameters(upload / "build-gpu" / gpu["code_file"])["user"] == "lab-test"
    for cell in built.cells:                 # runs only on Kaggle (nvcc, a GPU): it compiles here
        if cell.cell_type == "code":
            compile(cell.source, gpu["code_file"], "exec")
    for folder in ("wheels", "model"):
        meta = json.loads((upload / folder / "dataset-metadata.json").read_text())
        assert 6 <= len(meta["title"]) <= 50 and len(meta["licenses"]) == 1
    defaults = _parameters(upload / "notebook" / "submission.ipynb")
    assert defaults["wheelhouse"] == "prompt-recovery-lab-wheels" and defaults["device"] == "cuda"
    assert defaults["model"] == f"prompt-recovery-lab-model/{catalog.get(SMOL).source['file']}"

    pairs = dataio.read_pairs(REPO / "res" / "01_biggest_model" / "validation_qwen.csv").head(3)
    test = pairs.drop(columns=[dataio.PROMPT])                      # as Kaggle's test.csv
    # this machine has no GPU: only the device differs from the upload (and the answers' cap)
    done, work, mode = run_as_kaggle(upload / "notebook" / "submission.ipynb", upload, test, tmp_path,
                                     {"device": "cpu", "max_new_tokens": 8, "n_threads": 2})
    shown = _shown(work / "executed.ipynb") if (work / "executed.ipynb").exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + shown[-3000:]
    assert "probe: network unreachable" in done.stdout or mode == "chmod", done.stdout
    if mode == "namespaces" or os.geteuid() != 0:
        assert "probe: input read-only" in done.stdout, done.stdout
    else:
        warnings.warn("root without namespaces: the input folder was writable (checked unchanged after)")
    py = tmp_path / "kaggle-python" / "bin" / "python"
    assert f"({py})" in shown and "Successfully installed" in shown and "prompt-recovery-lab" in shown
    assert list((tmp_path / "kaggle-python").glob("lib/python3*/site-packages/shared/task/submit.py"))
    assert "3 computed now" in shown and "on cpu" in shown and "s per sample" in shown
    assert "samples:" in shown and "budget" in shown
    sub = pd.read_csv(work / "submission.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["id", dataio.PROMPT]
    assert list(sub["id"]) == list(pairs["id"]) and sub[dataio.PROMPT].str.strip().ne("").all()


def test_kaggle_notebooks_are_paired():
    pairs = sorted((REPO / "kaggle").glob("*.ipynb"))
    assert pairs, "kaggle/ holds the GPU build notebook"
    for ipynb in pairs:
        assert notebooks.unsynced(ipynb) is None, f"make sync: {ipynb.name}"


def test_the_notebook_defaults_are_the_upload_folders():
    """The submission notebook's defaults name make_kaggle's dataset slugs and the lab's default
    model's file, and ask for the GPU: on Kaggle it runs as uploaded."""
    defaults = _parameters(make_kaggle.SUBMISSION.with_suffix(".py"))
    assert defaults["input_dir"] == "/kaggle/input" and defaults["out"] == "/kaggle/working/submission.csv"
    assert defaults["wheelhouse"] == make_kaggle.WHEELS and defaults["device"] == "cuda"
    assert defaults["test_csv"] == f"{make_kaggle.COMPETITION}/test.csv"
    assert defaults["model"] == f"{make_kaggle.MODEL}/{catalog.get(submit.DEFAULT_MODEL).source['file']}"
    make = (REPO / "Makefile").read_text()
    assert re.search(rf"^MODEL \?= {re.escape(submit.DEFAULT_MODEL)}$", make, re.M)
    assert len(re.findall(r"^KAGGLE_PYTHON \?= 3\.\d+$", make, re.M)) == 1   # named once


def test_build_info_names_what_would_not_run(tmp_path):
    """A wheelhouse for another Python, a CPU without a compiled-in feature, an older glibc: each
    is a problem that says what to do, before pip runs."""
    (tmp_path / "BUILD.json").write_text(json.dumps({
        "python": "3.99", "wheels": ["numpy-2.0-cp399-cp399-manylinux_2_28_x86_64.whl", "tqdm-4.0-py3-none-any.whl"],
        "llama_cpp": {"wheel": "llama_cpp_python-0.3-py3-none-linux_x86_64.whl", "cmake_args": "-DGGML_NATIVE=ON",
                      "cpu_flags": ["avx2", "avx512f"], "glibc": "9.99", "built_on": {"glibc": "glibc-9.99"}}}))
    found = build_info.problems(tmp_path, cpuinfo="flags : fpu sse avx avx2 fma")
    assert len(found) == 3, found
    assert "1 of the 2 wheels (numpy)" in found[0] and "KAGGLE_PYTHON=%d.%d" % sys.version_info[:2] in found[0]
    assert "lacks avx512f" in found[1] and "-DGGML_NATIVE=OFF" in found[1]
    assert "older than 9.99" in found[2]
    assert build_info.wheel_tags("a-1-cp312.cp313-abi3-manylinux1_x86_64.linux_x86_64.whl") >= {
        "cp313-abi3-linux_x86_64", "cp312-abi3-manylinux1_x86_64"}


@pytest.mark.slow
def test_install_sh_stops_before_pip_on_another_python(tmp_path, wheelhouse):
    wh = tmp_path / "wheels"
    shutil.copytree(wheelhouse, wh, copy_function=os.link)
    build = json.loads((wh / "BUILD.json").read_text())
    assert build["python"] == "%d.%d" % sys.version_info[:2] and "avx2" in build["llama_cpp"]["cpu_flags"]
    assert "avx512f" not in build["llama_cpp"]["cpu_flags"] and "-DGGML_NATIVE=OFF" in build["llama_cpp"]["cmake_args"]
    other = f"cp3{sys.version_info[1] + 1}"
    build.update(python=f"3.{sys.version_info[1] + 1}",
                 wheels=[re.sub(r"-cp3\d+-cp3\d+-", f"-{other}-{other}-", w) for w in build["wheels"]])
    (wh / "BUILD.json").unlink()
    (wh / "BUILD.json").write_text(json.dumps(build))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=300)
    py = tmp_path / "venv" / "bin" / "python"
    done = subprocess.run(["bash", str(wh / "install.sh"), str(py)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the wheelhouse is for Python 3.%d" % (sys.version_info[1] + 1) in done.stderr
    assert "KAGGLE_PYTHON=%d.%d" % sys.version_info[:2] in done.stderr
    assert not list((tmp_path / "venv").rglob("numpy"))               # stopped before pip


def test_make_kaggle_refuses_bad_input_before_copying(tmp_path):
    with pytest.raises(LabError, match="KAGGLE_USER"):
        make_kaggle.make(tmp_path, "Not A User", SMOL)
    with pytest.raises(LabError, match="no install.sh"):
        make_kaggle.make(tmp_path, "lab-test", SMOL)
    with pytest.raises(LabError, match="assigns 'nope' 0 times"):
        make_kaggle.set_defaults("a = 1  # one\n", {"nope": 2})
    assert make_kaggle.set_defaults("a = 1  # one\nb = 'x'", {"a": "s"}) == "a = 's'  # one\nb = 'x'"


@pytest.mark.parametrize("arguments, message", [
    (["--user", "Bad User!", "--model", SMOL], "KAGGLE_USER"),
    (["--user", "lab-test", "--model", "phi-2"], "is a hf model"),
    (["--user", "lab-test", "--model", "no-such-model"], "unknown model"),
    (["--user", "lab-test", "--model", SMOL, "--strategy", "nope"], "unknown strategy 'nope'"),
])
def test_make_kaggle_checks_every_argument_before_the_wheelhouse_is_built(tmp_path, arguments, message, capsys):
    """A fresh user's `make kaggle KAGGLE_USER="Bad User!"` rebuilt the wheelhouse (a first run:
    minutes of llama.cpp build), replacing a good upload folder, before the username was refused.
    `make kaggle` now runs `make_kaggle.py --check` first, which writes nothing."""
    assert make_kaggle.main([str(tmp_path / "up"), "--check", *arguments]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "up").exists()
    assert make_kaggle.main([str(tmp_path / "up"), "--check", "--user", "lab-test", "--model", SMOL]) == 0
    assert not (tmp_path / "up").exists()
    recipe = subprocess.run(["make", "-n", "-o", "setup", "kaggle", "KAGGLE_USER=lab-test"], cwd=REPO,
                            capture_output=True, text=True, timeout=60).stdout.splitlines()
    check = next(i for i, line in enumerate(recipe) if "make_kaggle.py" in line and "--check" in line)
    assert check < next(i for i, line in enumerate(recipe) if "make_wheelhouse.sh" in line)
