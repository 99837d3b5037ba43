"""The fast-enough table: published file sizes and the model load time reach its rows, cells and sentences."""
import pytest

from shared import fastenough, roofline


class CeilingModel:
    """fastenough.Model's predict at the bare roofline ceiling (no calibration rows needed)."""

    def predict(self, model, quant, hardware, input_tokens, output_tokens, budget_s, batch_size=1, n_ctx=None,
                samples=None):
        return roofline.predict(model, quant, hardware, batch_size, input_tokens, output_tokens, budget_s,
                                name=model, n_ctx=n_ctx, samples=samples)


@pytest.fixture(scope="module")
def table():
    return fastenough.fast_enough(CeilingModel(), ["llama-2-13b-chat", "mixtral-8x7b-instruct-v0.1"],
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
    grid = fastenough.fast_enough_grid(table)
    cells = grid.set_index(["model", "quantization"])
    assert "(file)" in cells.loc[("llama-2-13b-chat", "Q4_K_M"), "T4"]
    assert "(bpw est.)" in cells.loc[("llama-2-13b-chat", "IQ2_XS"), "T4"]
    assert "(params)" in cells.loc[("llama-2-13b-chat", "bnb-4bit"), "T4"]
    load = fastenough.load_summary(table)
    lo, hi = table["load_s"].min(), table["load_s"].max()
    assert f"from {lo:.0f} s" in load and f"to {hi:.0f} s" in load and "0.129 GB/s" in load
    assert "ironbar/prompt_recovery" in load
    weights = fastenough.weights_summary(table)
    assert "the larger used" in weights and "IQ2_XS" in weights


def test_the_answer_sentences_state_the_load_time_and_the_weights_file(table):
    t = table[table["family"].eq("llama.cpp")].assign(calibrated=True)   # the ceiling stands in for a calibration
    text = fastenough.biggest_sentences(t)     # 4 bits or more: Mixtral Q4_K_M from its published file
    line = next(x for x in text.splitlines() if x.startswith("- **2xT4**"))
    r = fastenough.biggest(t).set_index("hardware").loc["2xT4"]
    assert (r["model"], r["quantization"]) == ("mixtral-8x7b-instruct-v0.1", "Q4_K_M")
    assert "weights: file Mixtral-8x7B-Instruct-v0.1-q4-k-m.gguf 28.4 GB" in line and "file, file" not in line
    assert f"after loading the model once in {r['load_s']:.0f} s (uncalibrated for llama.cpp)" in line
