"""Batched decoding predictions (issue #14 item 7): a runtime at batch > 1 is calibrated only by
batched rows of that runtime on the card's generation (llama.cpp: public P40 microbatch rows);
elsewhere the cell is "uncalibrated" with a range from no gain from batching to the ceiling."""
import pytest

from shared.machine import REPO
from shared.report.report import iteration_module
from shared.speed import calibration, predictor, roofline
from shared.task import competition

answer = iteration_module(REPO / "iterations" / "01_biggest_model", "answer")   # Iteration 1's answer tables

BUDGET_S = competition.facts().budget_s_per_sample


@pytest.fixture(scope="module")
def model():
    return predictor.Predictor(hardware=("P4", "P100", "T4", "2xT4"))


def test_the_batched_llama_cpp_rows_are_cited_and_per_sequence():
    rows = [o for o in calibration.published_observations() if o.family == "llama.cpp" and o.batch_size > 1]
    assert {o.hardware for o in rows} == {"tesla-p40"}
    assert sorted(o.batch_size for o in rows) == [8, 16, 32]
    assert all(o.fit for o in rows)
    assert {o.source.split(" (")[0] for o in rows} == {"ggml-org/llama.cpp PR #5434", "ggml-org/llama.cpp PR #7716"}
    by_batch = {o.batch_size: o for o in rows}
    assert by_batch[32].decode_tok_s * 32 == pytest.approx(470.11, rel=1e-3)   # the table's t/s for the microbatch
    assert by_batch[8].decode_tok_s * 8 == pytest.approx(146.73, rel=1e-3)


def test_llama_cpp_batches_on_a_t4_are_uncalibrated_from_no_gain_to_the_ceiling(model):
    one = model.predict("mistral-7b-instruct-v0.2", "Q4_K_M", "T4", 600, 18, BUDGET_S, 1)
    for b in (8, 32):
        p = model.predict("mistral-7b-instruct-v0.2", "Q4_K_M", "T4", 600, 18, BUDGET_S, b)
        assert one.calibrated and not p.calibrated
        assert p.decode_calibration.startswith(f"uncalibrated at batch {b}: no batched llama.cpp row on a turing card")
        assert p.decode_tok_s == pytest.approx(p.ceiling_tok_s)                 # the optimistic end
        # the pessimistic end: no gain from batching, each sequence a batch-1 step, one after another
        assert p.decode_tok_s_low == pytest.approx(one.decode_tok_s / b, rel=1e-9)
        assert p.s_per_sample_high > p.s_per_sample
        assert p.decode_error_pct is None
        assert p.verdict.startswith("uncalibrated") or p.verdict in ("too slow", "does not fit")


def test_llama_cpp_batches_on_pascal_are_calibrated_by_the_p40_rows(model):
    for hw in ("P4", "P100"):
        p = model.predict("mistral-7b-instruct-v0.2", "Q4_K_M", hw, 600, 18, BUDGET_S, 8)
        assert p.calibrated, hw
        assert p.decode_calibration.startswith("batched rows:") and "microbatch" in p.decode_calibration
        assert p.decode_tok_s_low == p.decode_tok_s
        assert p.decode_tok_s < p.ceiling_tok_s


def test_a_runtime_with_batched_rows_on_the_generation_stays_calibrated(model):
    p = model.predict("mistral-7b-instruct-v0.2", "fp16", "T4", 600, 18, BUDGET_S, 8)
    assert p.calibrated and p.decode_calibration.startswith("batched rows: transformers on T4")
    q = model.predict("mistral-7b-instruct-v0.2", "fp16", "P100", 600, 18, BUDGET_S, 8)
    assert not q.calibrated and "no batched transformers row on a pascal card" in q.decode_calibration


def test_held_out_predictions_keep_the_batch_1_constants(model):
    hw = roofline.hardware("T4")
    held = model.calibrator.calibration("llama.cpp", hw, batch_size=8, fallback=True)
    plain = model.calibrator.calibration("llama.cpp", hw, batch_size=1)
    assert held.decode_efficiency == plain.decode_efficiency and held.calibrated
    assert held.decode_rows.startswith("no batched llama.cpp row on this generation; batch-1 calibration")


def test_the_batch_check_shows_how_far_batch_1_constants_miss_the_p40_batches(model):
    rows = model.batch_check[(model.batch_check["family"] == "llama.cpp") & (model.batch_check["hardware"] == "P40")]
    assert sorted(rows["batch_size"]) == [8, 16, 32]
    assert (rows["predicted_tok_s"] > rows["measured_tok_s"]).all()    # batch-1 efficiency overstates a batch


def test_the_batched_table_shows_ranges_and_says_what_a_llama_cpp_batch_is(model):
    table = predictor.fast_enough(model, ["mistral-7b-instruct-v0.2"], ["fp16", "Q4_K_M"], ["T4", "P100"],
                                   600, 18, competition.facts().budget_hours,
                                   competition.facts().samples, (1, 8, 32))
    t4 = answer.batched_table(table, "T4")
    assert list(t4["batch_size"]) == [1, 8, 32, 1, 8, 32]
    q4 = t4[t4["quantization"] == "Q4_K_M"].set_index("batch_size")
    assert not q4.loc[1, "decode_tok_s"].startswith("uncalibrated")
    for b in (8, 32):
        assert q4.loc[b, "decode_tok_s"].startswith("uncalibrated ")
        low, high = (float(x) for x in q4.loc[b, "decode_tok_s"].split()[1].split("-"))
        assert low < high
    fp16 = t4[t4["quantization"] == "fp16"].set_index("batch_size")
    assert not fp16.loc[8, "decode_tok_s"].startswith("uncalibrated")
    p100 = answer.batched_table(table, "P100").set_index(["quantization", "batch_size"])
    assert not p100.loc[("Q4_K_M", 8), "decode_tok_s"].startswith("uncalibrated")
    assert "one at a time" in answer.BATCH_CAPTION and "llama-server" in answer.BATCH_CAPTION
