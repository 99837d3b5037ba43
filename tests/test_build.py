"""The llama.cpp build runs on any x86-64 CPU (no AMX compiled in), and `make lab` starts as root.

ggml's AMX kernels fault with SIGILL on Xeon VMs that advertise AMX without granting it to
llama.cpp's threads (issue 8). scripts/install_llama_cpp.sh keeps -march=native but adds
-mno-amx-*; these tests catch a regression on any machine, AMD included: the installed build's
own feature list, the arguments it was built with, and what those arguments do to a CPU that
has AMX (a Sapphire Rapids target, whatever this machine is).
"""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from shared import machine
from shared.models import timing
from shared.machine import REPO

SCRIPT = REPO / "scripts" / "install_llama_cpp.sh"


def test_installed_llama_cpp_has_no_amx():
    info = machine.llama_cpp_build()
    assert info.startswith("CPU :") or "CPU :" in info, info  # the features line is there at all
    assert "AMX" not in info, f"AMX compiled into llama.cpp: {info}; rebuild with {SCRIPT.name}"


def test_installed_llama_cpp_was_built_by_the_script_without_amx():
    args = machine.llama_cpp_cmake_args()
    assert args, f"no install record in {sys.prefix}: build llama-cpp-python with {SCRIPT}"
    assert "-DLLAVA_BUILD=OFF" in args
    flags = " ".join(a for a in shlex.split(args) if a.startswith(("-DCMAKE_C_FLAGS", "-DCMAKE_CXX_FLAGS")))
    assert all(f in flags for f in ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")), args


def _script_default(name: str) -> str:
    for line in SCRIPT.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError(f"{name} not set in {SCRIPT}")


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_the_scripts_flags_remove_amx_even_on_a_cpu_that_has_it():
    no_amx = shlex.split(_script_default("NO_AMX"))

    def macros(*flags):
        out = subprocess.run(["cc", *flags, "-dM", "-E", "-x", "c", "/dev/null"],
                             capture_output=True, text=True, check=True).stdout
        return {line.split()[1] for line in out.splitlines() if "AMX" in line}

    assert {"__AMX_TILE__", "__AMX_INT8__"} <= macros("-march=sapphirerapids")  # the target has AMX
    assert macros("-march=sapphirerapids", *no_amx) == set()
    assert macros("-march=native", *no_amx) == set()
    assert "__AVX2__" in subprocess.run(  # vector extensions stay
        ["cc", "-march=haswell", *no_amx, "-dM", "-E", "-x", "c", "/dev/null"],
        capture_output=True, text=True, check=True).stdout


def test_rows_record_the_llama_cpp_build(smol_llama):
    row = timing.generate(smol_llama, prompt="Hi", max_new_tokens=2).row()
    assert row["llama_cpp_build"] == machine.llama_cpp_build() and "CPU :" in row["llama_cpp_build"]
    assert row["llama_cpp_cmake_args"] == machine.llama_cpp_cmake_args()
    assert (row["flash_attn"], row["n_batch"], row["n_ubatch"]) == (True, 2048, 512)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_starts_as_root_and_opens_a_paired_py_as_a_notebook():
    """`make lab` (the README's command) starts, serves speed.py as a notebook through
    jupytext's contents manager, and stops."""
    port, token = _free_port(), "prl-test"
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = (f"http://127.0.0.1:{port}/api/contents/iterations/01_biggest_model/speed.py"
           f"?type=notebook&content=1&token={token}")
    try:
        deadline, model = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    model = json.load(r)
                break
            except OSError:
                time.sleep(1)
        assert model is not None, f"server did not answer: exit {proc.poll()}"
        assert model["type"] == "notebook"
        cells = model["content"]["cells"]
        assert len(cells) >= 5 and any("parameters" in c["metadata"].get("tags", []) for c in cells)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        output = proc.stdout.read() if proc.stdout else ""
    assert "Running as root is not recommended" not in output
