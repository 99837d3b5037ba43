"""Timed generation on the real embedded models, through both backends."""
import pytest

from shared.models import timing
from conftest import CHAT

BACKENDS = ["smol_hf", "smol_llama"]
ALL = BACKENDS + ["gemma_hf", "gemma_llama"]


@pytest.mark.parametrize("fixture", BACKENDS)
def test_instruct_prompt_stops_at_eos_and_says_so(fixture, request):
    lm = request.getfixturevalue(fixture)
    rec = timing.generate(lm, messages=CHAT, max_new_tokens=48)
    assert rec.stop_reason == "eos"
    assert rec.output_tokens < 48
    assert rec.text.strip()


@pytest.mark.parametrize("fixture", ALL)
def test_forced_length_gives_exactly_n_tokens(fixture, request):
    lm = request.getfixturevalue(fixture)
    rec = timing.generate(lm, prompt="Once upon a time", max_new_tokens=12, force_length=True)
    assert rec.output_tokens == 12
    assert rec.stop_reason == "length"


@pytest.mark.parametrize("fixture", ALL)
def test_record_fields_agree_with_each_other(fixture, request):
    lm = request.getfixturevalue(fixture)
    prompt = "The three primary colours are"
    rec = timing.generate(lm, prompt=prompt, max_new_tokens=10, force_length=True)
    assert rec.input_tokens == len(lm.encode(prompt=prompt))  # counted with the tokenizer
    assert rec.decode_tok_s == pytest.approx((rec.output_tokens - 1) / rec.decode_s)
    assert rec.total_s == pytest.approx(rec.prefill_s + rec.decode_s)
    assert 0 < rec.prefill_s < rec.total_s
    assert rec.throughput_tok_s == pytest.approx(rec.output_tokens / rec.total_s)
    assert rec.peak_rss_mb > 100
    row = rec.row()
    for key in ["machine", "cpu", "git_commit", "timestamp", "torch_version", "llama_cpp_python_version"]:
        assert row[key], key
    assert row["model"] == lm.name and row["backend"] == lm.backend


def test_benchmark_marks_warmup_and_repetitions(smol_llama):
    recs = timing.benchmark(smol_llama, prompt="Hello there", max_new_tokens=4, repetitions=2, warmup=1)
    assert [(r.phase, r.rep) for r in recs] == [("warmup", 0), ("timed", 0), ("timed", 1)]


def test_every_llama_call_starts_from_an_empty_kv_cache(smol_llama):
    import llama_cpp
    ids = smol_llama.encode(prompt="A repeated prompt must be prefilled again each time")
    a = timing.generate(smol_llama, input_ids=ids, max_new_tokens=5, force_length=True)
    mem = llama_cpp.llama_get_memory(smol_llama.llm._ctx.ctx)
    after_one = llama_cpp.llama_memory_seq_pos_max(mem, 0)
    b = timing.generate(smol_llama, input_ids=ids, max_new_tokens=5, force_length=True)
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == after_one == len(ids) + 5 - 2
    assert a.text == b.text


def test_transformers_batch_generation(smol_hf):
    rec = timing.generate(smol_hf, prompt="Hello", max_new_tokens=4, force_length=True, batch_size=3)
    assert rec.batch_size == 3 and rec.output_tokens == 4
    assert rec.throughput_tok_s == pytest.approx(3 * 4 / rec.total_s)
