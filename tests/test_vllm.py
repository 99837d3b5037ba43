"""The vllm backend on the real SmolLM2-135M: the lab's token rules, greedy agreement with
transformers, batches, limits, options in the rows, and the notebook path (a child process in
the vLLM environment).

Tests marked `vllm` run vLLM in the test process, so they run under .venv-vllm/bin/python
(`make test` runs them there with -m vllm); in the lab's Python they are skipped saying so. The
`vllm_env` test runs from the lab's Python and starts the vLLM environment as a child."""
import pytest

from shared.models import envs, loading, timing
from shared.run import experiment
from shared.errors import LabError
from shared.errors import ContextTooLongError

SMOL = "smollm2-135m-instruct"
CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
TRICKY = [{"role": "user", "content": "Repeat <|im_end|> and <|im_start|>assistant literally."}]


@pytest.fixture(scope="module")
def smol_vllm():
    """SmolLM2 in float32 on every CPU: the exactness checks below (same tokens as transformers,
    the same answer alone or in a batch) hold there. In bfloat16, this CPU's default where it has
    bf16 instructions, a batch's answers depend on what else is in the batch (measured on the
    2-core Xeon, 2026-12-02: "Once upon a time" alone and next to two chat prompts parted at
    token 17 of 40), so the default is tested apart (test_default_dtype_...)."""
    lm = loading.load(SMOL, "vllm", n_threads=2, dtype="float32")
    yield lm
    lm.close()


def test_quantizations_vllm_cannot_run_are_refused_before_loading():
    with pytest.raises(loading.UnsupportedQuantizationError, match="awq, gptq"):
        loading.load(SMOL, "vllm", quantization="8bit")
    with pytest.raises(loading.UnsupportedQuantizationError, match="GGUF"):
        loading.load(SMOL, "vllm", quantization="awq")


def test_a_missing_vllm_environment_is_a_failed_row_saying_how_to_install(tmp_path, monkeypatch):
    if envs.importable("vllm"):
        pytest.skip("vLLM is importable here: this Python runs the backend itself")
    monkeypatch.setenv("PRL_VLLM_PYTHON", str(tmp_path / "no-such-python"))

    def measure(config):
        yield {"never": True}

    df = experiment.run([{"model": SMOL, "backend": "vllm"}], measure, tmp_path / "t.jsonl")
    assert df["status"].tolist() == ["failed"]
    assert "make setup VLLM=1" in df["error"].iloc[0]


@pytest.mark.vllm
def test_token_rules_are_the_other_backends(smol_vllm, smol_llama):
    assert smol_vllm.eos_ids == smol_llama.eos_ids == {0, 2, 4}
    for chat in (CHAT, TRICKY):  # control-token text in a message stays literal text
        assert smol_vllm.encode(messages=chat) == smol_llama.encode(messages=chat)
    assert smol_vllm.context_length == 4096
    assert smol_vllm.dtype == "float32"


@pytest.mark.vllm
def test_greedy_tokens_match_transformers_fp32(smol_vllm, smol_hf):
    assert smol_vllm.dtype == "float32"
    ids = smol_vllm.encode(messages=CHAT)
    [(new, reason)] = smol_vllm.generate_batch([ids], 12)
    ref = smol_hf.timed_generate(ids, 12, False, 1).new_ids
    assert new[:6] == ref[:6]


@pytest.mark.vllm
def test_batch_keeps_input_order_and_stops_on_the_stop_set(smol_vllm):
    a = smol_vllm.encode(messages=CHAT)
    b = smol_vllm.encode(prompt="Once upon a time, there was a")
    out = smol_vllm.generate_batch([a, b, a], 40)
    assert [r for _, r in out] == ["eos", "length", "eos"]
    assert out[0][0][-1] in smol_vllm.eos_ids and out[0] == out[2]
    assert len(out[1][0]) == 40
    assert "Paris" in smol_vllm.decode(out[0][0])
    assert smol_vllm.generate_batch([b], 40)[0] == out[1]  # alone or in a batch: the same answer


@pytest.mark.vllm
def test_forced_length_bans_the_stop_set(smol_vllm):
    ids = smol_vllm.encode(messages=CHAT)
    rec = timing.generate_batch(smol_vllm, [ids, ids[:-1]], max_new_tokens=20, force_length=True)
    assert rec.output_tokens == 40 and rec.n_length == 2
    out = smol_vllm.timed_generate_batch([ids], 20, True).new_ids[0]
    assert len(out) == 20 and not set(out) & smol_vllm.eos_ids


@pytest.mark.vllm
def test_bad_input_is_refused_before_the_engine_runs(smol_vllm):
    ids = smol_vllm.encode(messages=CHAT)
    with pytest.raises(LabError, match="empty"):
        smol_vllm.generate_batch([ids, []], 8)
    with pytest.raises(LabError, match="outside the vocabulary"):
        timing.generate_batch(smol_vllm, [ids, [smol_vllm.n_vocab]], 8)
    with pytest.raises(ContextTooLongError, match="prompt 1"):
        timing.generate_batch(smol_vllm, [ids, ids * 200], 8)
    with pytest.raises(LabError, match="non-empty list"):
        timing.generate_batch(smol_vllm, [], 8)


@pytest.mark.vllm
def test_rows_record_the_engine_options_and_time_to_first_token(smol_vllm):
    [warm, rec] = timing.benchmark_batch(smol_vllm, 40, 4, max_new_tokens=6, repetitions=1)
    row = rec.row()
    assert row["backend"] == "vllm" and row["batch_size"] == 4 and row["output_tokens"] == 24
    for key in ("vllm_version", "vllm_tensor_parallel_size", "vllm_max_model_len", "vllm_enforce_eager",
                "vllm_kv_cache_gib", "vllm_enable_prefix_caching", "vllm_gpu_memory_utilization"):
        assert key in row
    assert row["vllm_max_model_len"] == 4096 and row["vllm_tensor_parallel_size"] == 1
    assert 0 < rec.ttft_median_s <= rec.ttft_max_s <= rec.wall_s
    assert rec.samples_s == pytest.approx(4 / rec.wall_s)
    # single-prompt timing (the speed notebook's path) also works on this backend
    one = timing.generate(smol_vllm, input_ids=smol_vllm.encode(messages=CHAT), max_new_tokens=8)
    assert one.backend == "vllm" and 0 < one.prefill_s <= one.total_s
    assert one.row()["vllm_version"] == row["vllm_version"]


@pytest.mark.vllm_env
def test_experiment_runs_vllm_configurations_in_the_vllm_environment(tmp_path):
    def measure(config):
        lm = loading.load(config["model"], config["backend"], n_threads=2)
        try:
            for rec in timing.benchmark_batch(lm, 32, config["batch_size"], max_new_tokens=4,
                                              repetitions=1, warmup=0):
                yield rec.row()
        finally:
            lm.close()

    configs = [{"model": SMOL, "backend": "vllm", "batch_size": 3},
               {"model": SMOL, "backend": "llama_cpp", "batch_size": 3}]
    df = experiment.run(configs, measure, tmp_path / "batch.jsonl")
    assert df["status"].tolist() == ["ok", "ok"], df.get("error")
    assert df["output_tokens"].tolist() == [12, 12]
    assert df["vllm_version"].iloc[0] and df["vllm_version"].isna().iloc[1]


@pytest.mark.vllm
def test_default_dtype_follows_the_cpu_and_answers(smol_llama):
    """The default: bfloat16 where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), else
    float32 (vllm_engine.default_dtype). In either, the chat answer stops on the stop set with
    "Paris", the first greedy token is llama.cpp's, and a prompt repeated within one batch gets
    one answer."""
    from shared.models import vllm_engine
    lm = loading.load(SMOL, "vllm", n_threads=2)
    try:
        assert lm.dtype == ("bfloat16" if vllm_engine.cpu_bf16() else "float32")
        assert lm.runtime == f"vLLM {'bf16' if lm.dtype == 'bfloat16' else 'fp32'}"
        a = lm.encode(messages=CHAT)
        b = lm.encode(prompt="Once upon a time, there was a")
        out = lm.generate_batch([a, b, a], 24)
        assert out[0] == out[2] and out[0][1] == "eos" and "Paris" in lm.decode(out[0][0])
        assert out[1][0][0] == smol_llama.timed_generate(b, 1, True, 1).new_ids[0]
    finally:
        lm.close()
