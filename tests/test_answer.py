"""The fast-enough table: published file sizes and the model load time reach its rows, cells and sentences."""
import pandas as pd
import pytest

from shared.machine import REPO
from shared.report.report import iteration_module
from shared.speed import predictor, roofline

answer = iteration_module(REPO / "iterations" / "01_biggest_model", "answer")   # Iteration 1's answer tables


class CeilingModel:
    """predictor.Predictor's predict at the bare roofline ceiling (no calibration rows needed)."""

    def predict(self, model, quant, hardware, input_tokens, output_tokens, budget_s, batch_size=1, n_ctx=None,
                samples=None):
        return roofline.predict(model, quant, hardware, batch_size, input_tokens, output_tokens, budget_s,
                                name=model, n_ctx=n_ctx, samples=samples)


@pytest.fixture(scope="module")
def table():
    return predictor.fast_enough(CeilingModel(), ["llama-2-13b-chat", "mixtral-8x7b-instruct-v0.1"],
                                  ["bnb-4bit", "Q4_K_M", "IQ2_XS"], ["T4", "2xT4"], input_tokens=600,
                                  output_tokens=20, budget_hours=9.0, samples=1300)


def test_rows_take_one_load_from_the_budget_and_say_where_the_weights_come_from(table):
    budget = 9 * 3600 / 1300
    assert (table["budget_s"] - budget).abs().max() < 1e-9
    assert (table["budget_net_s"] - (budget - table["load_s"] / 1300)).abs().max() < 1e-9
    assert (table["load_s"] > 0).all()
    assert (table["calls_per_sample"] == (table["budget_net_s"] // table["s_per_sample_high"]).astype(int)).all()
    by = table.set_index(["model", "quantization", "hardware"])
    assert by.loc[("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4"), "weights_source"] == "file"
    assert by.loc[("mixtral-8x7b-instruct-v0.1", "IQ2_XS", "2xT4"), "weights_source"] == "bpw estimate"
    assert by.loc[("mixtral-8x7b-instruct-v0.1", "bnb-4bit", "2xT4"), "weights_source"] == "parameters"
    # the fp16 checkpoint bitsandbytes reads is larger than the GGUF file: a longer load
    assert by.loc[("mixtral-8x7b-instruct-v0.1", "bnb-4bit", "2xT4"), "load_s"] > \
        3 * by.loc[("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4"), "load_s"]


def test_cells_and_caption_say_file_or_estimate_and_the_load_time(table):
    grid = answer.fast_enough_grid(table)
    cells = grid.set_index(["model", "quantization"])
    assert "(file)" in cells.loc[("llama-2-13b-chat", "Q4_K_M"), "T4"]
    assert "(bpw est.)" in cells.loc[("llama-2-13b-chat", "IQ2_XS"), "T4"]
    assert "(params)" in cells.loc[("llama-2-13b-chat", "bnb-4bit"), "T4"]
    load = answer.load_summary(table)
    lo, hi = table["load_s"].min(), table["load_s"].max()
    assert f"from {lo:.0f} s" in load and f"to {hi:.0f} s" in load and "0.129 GB/s" in load
    assert "ironbar/prompt_recovery" in load
    weights = answer.weights_summary(table)
    assert "the larger used" in weights and "IQ2_XS" in weights


def test_the_answer_sentences_state_the_load_time_and_the_weights_file(table):
    t = table[table["family"].eq("llama.cpp")].assign(calibrated=True)   # the ceiling stands in for a calibration
    text = answer.biggest_sentences(t)     # 4 bits or more: Mixtral Q4_K_M from its published file
    line = next(x for x in text.splitlines() if x.startswith("- **2xT4**"))
    r = answer.biggest(t).set_index("hardware").loc["2xT4"]
    assert (r["model"], r["quantization"]) == ("mixtral-8x7b-instruct-v0.1", "Q4_K_M")
    assert "weights: file Mixtral-8x7B-Instruct-v0.1-q4-k-m.gguf 28.4 GB" in line and "file, file" not in line
    # the suffix is about the load time, and says so (not read as if the speed were uncalibrated)
    assert f"after loading the model once in {r['load_s']:.0f} s (load time uncalibrated for llama.cpp" in line
    assert "s (uncalibrated for llama.cpp)" not in line


def test_a_cell_above_the_plausibility_ceiling_is_flagged_and_never_the_answer():
    class Ceiling(CeilingModel):
        ceiling = 0.87          # the bare roofline runs at efficiency 1: above any published llama.cpp row
    t = predictor.fast_enough(Ceiling(), ["llama-2-13b-chat"], ["Q4_K_M"], ["T4"], input_tokens=600,
                               output_tokens=16, budget_hours=9.0, samples=1300)
    r = t.iloc[0]
    assert r["implied_efficiency"] > 0.87 and not r["plausible"] and r["fast_enough"]
    cell = answer.fast_enough_grid(t.assign(calibrated=True)).iloc[0]["T4"]
    assert cell.startswith("⚠ above ceiling") and "✓" not in cell
    assert pd.isna(answer.biggest(t.assign(calibrated=True)).iloc[0].get("model"))
    assert pd.isna(answer.answer(t.assign(calibrated=True)).iloc[0].get("model"))


@pytest.fixture(scope="module")
def lab_model():
    return predictor.Predictor(answer.RESULTS, ["P100", "T4", "2xT4"])


def test_the_answer_has_calibrated_prefill_intervals_and_the_second_split(lab_model):
    t = predictor.fast_enough(lab_model, ["llama-2-13b-chat", "mixtral-8x7b-instruct-v0.1"], ["Q4_K_M"],
                               ["P100", "T4", "2xT4"], 600, 16, 9.0, 1300, splits=True)
    by = t.set_index(["model", "hardware"])
    layer, row = by.loc[("mixtral-8x7b-instruct-v0.1", "2xT4")], by.loc[("mixtral-8x7b-instruct-v0.1", "2xT4 row split")]
    assert layer["calibrated"] and not row["calibrated"] and row["decode_calibration"].startswith("uncalibrated row split")
    assert row["decode_tok_s_low"] == pytest.approx(layer["decode_tok_s"], rel=1e-6)   # no gain: the layer split's rate
    assert row["decode_tok_s"] > 1.5 * layer["decode_tok_s"]                           # both cards' bandwidth
    t4 = by.loc[("llama-2-13b-chat", "T4")]
    assert t4["calls_lo"] <= t4["calls_per_sample"] <= t4["calls_hi"] and t4["prefill_s"] > 0.3
    assert t4["decode_tok_s_lo"] < t4["decode_tok_s"] < t4["decode_tok_s_hi"]
    assert "T4 rows" in t4["error_scope"]                                    # the T4's own rows, not the RTX 2080's
    cards = answer.answer(t).set_index("hardware")
    assert cards.loc["P100", "basis"] == "range" and cards.loc["T4", "basis"] == "calibrated"
    assert cards.loc["2xT4", "model"] == "mixtral-8x7b-instruct-v0.1"
