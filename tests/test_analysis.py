"""Tables count each configuration's latest run once: a rerun replaces, never pools."""
import pandas as pd

from shared.report import tables
from shared import results


def _rows(run_id, model, decode, n=2, runtime="llama.cpp Q4_1"):
    return [{"run_id": run_id, "model": model, "runtime": runtime, "machine": "CPU X (2 cores)",
             "status": "ok", "phase": "timed", "decode_tok_s": decode, "prefill_s": 0.5,
             "input_tokens": 300} for _ in range(n)]


def test_a_rerun_replaces_the_earlier_run_of_the_same_configuration():
    df = pd.DataFrame(_rows("a", "m1", 10.0) + _rows("a", "m2", 50.0) + _rows("b", "m1", 20.0, n=3))
    latest = results.ok_timed(df)
    assert sorted(latest.groupby("model")["run_id"].unique().map(list).to_dict().items()) == \
        [("m1", ["b"]), ("m2", ["a"])]  # m2 was not rerun: its only run stays
    table = tables.speed_table(df)
    assert table.loc["m1"].iloc[0] == "20.0 ± 0.0" and table.loc["m2"].iloc[0] == "50.0 ± 0.0"
    assert len(latest) == 3 + 2


def test_rows_without_run_id_are_kept():
    df = pd.DataFrame(_rows("a", "m1", 10.0)).drop(columns="run_id")
    assert len(results.ok_timed(df)) == 2
