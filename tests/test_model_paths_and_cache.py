"""A model path as users name it; a model cache that cannot be written (issue 24; once in
tests/test_fault_kinds_24.py).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from shared.models import catalog
from shared.task import dataio, submit
from shared.errors import LabError
from shared.machine import REPO

from lab_inputs import OPTIONS, PAIRS, SMOL, needs_read_only, no_load


# --- 24.5 a model path as users name it ------------------------------------------------------------

@pytest.mark.parametrize("name", ["Model.GGUF", "model.Gguf", "model.bin", "model"])
def test_a_gguf_file_by_any_name(name, tmp_path):
    """The reported case (unslothai/unsloth#8100's kind): Model.GGUF was an unknown model."""
    src = catalog.resolve(catalog.get(SMOL))
    folder = tmp_path / "My Models"
    folder.mkdir()
    shutil.copy(src, folder / name)
    spec = catalog.get(folder / name)
    assert (spec.format, spec.quantization, spec.chat_template) == ("gguf", "Q4_1", True)
    (folder / "notes.bin").write_text("not a model")
    with pytest.raises(catalog.UnknownModelError):
        catalog.get(folder / "notes.bin")


def test_a_catalog_name_in_any_case():
    assert catalog.get("SmolLM2-135M-Instruct").name == SMOL
    assert catalog.get(" Qwen2.5-Coder-1.5B-Instruct ").name == "qwen2.5-coder-1.5b-instruct"


def test_make_submit_with_paths_that_have_spaces(tmp_path):
    """`make submit MODEL="…/My Models/x.gguf"` split the path at the space."""
    folder = tmp_path / "My Models"
    folder.mkdir()
    shutil.copy(catalog.resolve(catalog.get(SMOL)), folder / "Model.GGUF")
    (tmp_path / "My Data").mkdir()
    (tmp_path / "My Out").mkdir()
    test = dataio.write_csv(PAIRS.head(2), tmp_path / "My Data" / "test file.csv")
    out = tmp_path / "My Out" / "sub mission.csv"
    done = subprocess.run(["make", "-o", "setup", "submit", f"DATA={test}", f"MODEL={folder / 'Model.GGUF'}",
                           f"OUT={out}", "STRATEGY=direct", "SUBMIT_ARGS=--n-threads 2 --max-new-tokens 8"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    sub = pd.read_csv(out, dtype=str)
    assert sub["id"].tolist() == ["z9", "a1"] and sub["rewrite_prompt"].str.strip().all()
    assert f"model {folder / 'Model.GGUF'};" in done.stdout           # the file, loaded by its path


PATH_VARIABLES = ("PYTHON", "PY", "VENV", "VLLM_VENV", "ITERATION", "PARAMS", "DATA", "MODEL", "OUT",
                  "STRATEGY", "GPU", "WHEELHOUSE", "LAB_OVERRIDES")


def test_every_make_variable_that_can_hold_a_path_is_quoted():
    """Each use of such a variable in a recipe is inside double quotes (one shell word); the
    condition of make's own $(if ...) is make's, not the shell's."""
    import re
    unquoted = []
    for number, line in enumerate((REPO / "Makefile").read_text().splitlines(), 1):
        if not line.startswith("\t"):
            continue
        quoted = False
        for k, ch in enumerate(line):
            if ch == '"':
                quoted = not quoted
            m = re.match(r"\$\((\w+)\)", line[k:])
            if m and m[1] in PATH_VARIABLES and not quoted and not line[:k].endswith("$(if "):
                unquoted.append(f"Makefile:{number}: $({m[1]})")
    assert not unquoted, unquoted


# --- 24.6 a model cache that cannot be written ------------------------------------------------------

@pytest.fixture
def no_cache_variables(monkeypatch):
    monkeypatch.delenv("PRL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


@needs_read_only
@pytest.mark.parametrize("backend, folder", [("llama_cpp", "gguf"), ("transformers", "hf")])
def test_a_home_that_cannot_be_written_is_an_error_before_loading(backend, folder, tmp_path, monkeypatch,
                                                                   no_cache_variables):
    """The reported case (huggingface/datasets#1581's kind: a container with HOME=/): the default
    Qwen model (assembled into the cache) and the transformers backend (converts into it)."""
    monkeypatch.setenv("HOME", "/sys")
    no_load(monkeypatch)
    model = "qwen2.5-coder-1.5b-instruct" if backend == "llama_cpp" else SMOL
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    with pytest.raises(LabError, match=rf"model cache /sys/\.cache/prompt-recovery-lab/{folder} cannot be "
                                       r"written .*HOME=/sys.*set PRL_CACHE .*XDG_CACHE_HOME"):
        submit.run(test, "direct", tmp_path / "s.csv", **{**OPTIONS, "model": model, "backend": backend})
    assert not (tmp_path / "s.csv").exists() and not submit.sidecar(tmp_path / "s.csv").exists()


def test_an_unwritable_prl_cache_is_named_on_every_load(tmp_path, monkeypatch, no_cache_variables):
    """PRL_CACHE under a regular file (fails for root too); loading.load, as a notebook calls it."""
    from shared.models import loading
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PRL_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(LabError, match=r"model cache .*a-file/cache/hf cannot be written \(Not a directory; "
                                       r"PRL_CACHE=.*a-file/cache\)"):
        loading.load(SMOL, "transformers")
    monkeypatch.setenv("PRL_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", "")    # empty: ignored, never the working directory
    assert catalog.cache_dir() == Path.home() / ".cache" / "prompt-recovery-lab"
