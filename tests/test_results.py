"""The results store and the configuration runner keep every measured row."""
import pandas as pd
import pytest

from shared import machine, results
from shared.report import tables
from shared.run import experiment


def test_rows_round_trip_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    results.append(path, [{"a": 1, "x": 0.5}, {"a": 2, "x": float("nan")}], run_id="r1")
    with open(path, "a") as f:
        f.write('{"a": 3, "x"')  # a write cut off by a crash
    with pytest.warns(UserWarning, match="torn"):
        df = results.read(path)
    assert df["a"].tolist() == [1, 2] and df["run_id"].unique().tolist() == ["r1"]
    assert pd.isna(df["x"][1])


def test_a_failing_config_is_recorded_and_the_run_goes_on_then_reruns_skip(tmp_path):
    path = tmp_path / "speed.jsonl"
    calls = []

    def measure(config):
        calls.append(config["model"])
        if config["model"] == "bad":
            raise MemoryError("CUDA out of memory")
        yield {"decode_tok_s": 10.0, "phase": "timed"}

    configs = experiment.grid(model=["good", "bad", "other"], backend=["transformers"])
    df = experiment.run(configs, measure, path, isolate=False)  # in-process: `calls` sees each call
    assert calls == ["good", "bad", "other"]
    assert df.set_index("model")["status"].to_dict() == {"good": "ok", "bad": "failed", "other": "ok"}
    assert "CUDA out of memory" in df.set_index("model").loc["bad", "error"]
    assert df["machine"].eq(machine.info()["machine"]).all()

    calls.clear()
    df = experiment.run(configs, measure, path, isolate=False)
    assert calls == ["bad"]  # done on this machine: skipped; failed: tried again
    assert len(df) == 4
    calls.clear()
    experiment.run(configs, measure, path, redo=True, isolate=False)
    assert calls == ["good", "bad", "other"]


def test_rows_from_another_machine_are_not_skipped(tmp_path):
    path = tmp_path / "speed.jsonl"
    results.append(path, {"model": "m", "backend": "b", "machine": "a GPU box", "status": "ok"})
    assert results.done_configs(path, ["model", "backend"]) == set()


def test_verdict_arithmetic():
    df = pd.DataFrame({"model": ["m"] * 2, "runtime": ["r"] * 2, "machine": ["x"] * 2,
                       "status": ["ok"] * 2, "phase": ["timed"] * 2, "input_tokens": [300, 300],
                       "prefill_s": [4.0, 6.0], "decode_tok_s": [10.0, 10.0]})
    v = tables.verdict(df, budget_hours=1.0, samples=144, output_tokens=100).iloc[0]
    # 25 s a sample; median prefill 5 s leaves 20 s: 1 + 20 * 10 = 201 tokens
    assert v["max_output_tokens"] == 201 and v["fits"] == "yes"
    assert v["s_per_sample"] == pytest.approx(5 + 99 / 10)


def test_linear_fit_recovers_a_line():
    fit = tables.linear_fit([1, 2, 4, 8], [3, 5, 9, 17])
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(1)
    assert fit["r2"] == pytest.approx(1)
