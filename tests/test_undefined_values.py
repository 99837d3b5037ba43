"""Undefined values in tables and figures: blank cells, never nan (issue 11; once in
tests/test_faults.py).
"""
import re

import numpy as np
import pandas as pd
import pytest

from shared import results
from shared.models import timing
from shared.report import tables, plots


# ---- 5. undefined values in tables and figures ----------------------------------------------

NAN = re.compile(r"\bnan\b", re.I)


@pytest.fixture(scope="module")
def rows_with_undefined_decode(smol_hf, smol_llama, tmp_path_factory):
    """Real rows: llama.cpp with max_new_tokens=1 (no decode phase: decode_tok_s is null in the
    table) and transformers with 3 tokens, as the speed, length-scaling and eos notebooks record."""
    path = tmp_path_factory.mktemp("rows") / "speed.jsonl"
    extra = dict(status="ok", error=None, budget_hours=9.0, samples=1300, target_output_tokens=100)
    for lm, n in ((smol_llama, 1), (smol_hf, 3)):
        for rep in range(2):
            for sweep, x in (("input", 8), ("input", 16), ("output", 8)):
                ids = timing.filler_ids(lm, x)
                rec = timing.generate(lm, input_ids=ids, max_new_tokens=n, force_length=True, rep=rep)
                results.append(path, rec.row(**extra, sweep=sweep, mode="ignore EOS"))
    df = results.read(path)
    assert df.loc[df["backend"] == "llama_cpp", "decode_tok_s"].isna().all()
    assert df.loc[df["backend"] == "transformers", "decode_tok_s"].notna().all()
    return df


def _every_table_and_figure(df, tmp_path) -> str:
    scs = df.assign(strategy="direct", scs=df["decode_tok_s"], encoder="all-MiniLM-L6-v2")
    made = [tables.speed_table(df, "decode_tok_s"), tables.speed_table(df, "prefill_s"),
           tables.verdict(df, 9.0, 1300, 100), tables.speedup(df, "transformers fp32"),
           tables.speedup(df, "llama.cpp Q4_1", "prefill_s"), tables.scaling_fits(df),
           tables.eos_summary(df)]
    text = "\n\n".join(tables.markdown(t, index=i < 2) for i, t in enumerate(made))
    plots.speed_bars(df, tmp_path / "speed.png")
    for sweep in ("input", "output"):
        plots.scaling(df, sweep, tmp_path / f"{sweep}.png")
    plots.eos_bars(df, tmp_path / "eos.png")
    plots.scs_bars(scs, tmp_path / "scs.png")
    assert len(list(tmp_path.glob("*.png"))) == 5
    import matplotlib.pyplot as plt
    plt.close("all")
    return text


def test_an_undefined_decode_rate_gives_blank_cells_not_nan(rows_with_undefined_decode, tmp_path):
    df = rows_with_undefined_decode
    text = _every_table_and_figure(df, tmp_path)
    assert not NAN.search(text), text
    table = tables.speed_table(df, "decode_tok_s")
    cell = table.loc["smollm2-135m-instruct"]
    assert [v for k, v in cell.items() if k.startswith("llama.cpp")] == ["n/a"]
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d", next(v for k, v in cell.items() if k.startswith("transformers")))
    v = tables.verdict(df, 9.0, 1300, 100).set_index("runtime")
    assert pd.isna(v.loc["llama.cpp Q4_1", "max_output_tokens"]) and v.loc["llama.cpp Q4_1", "fits"] == "n/a"
    assert pd.isna(v.loc["llama.cpp Q4_1", "s_per_sample"])
    hf_row = v.loc["transformers fp32"]  # defined values as before: the formula, and fits agreeing with it
    budget_s = 9.0 * 3600 / 1300
    assert hf_row["max_output_tokens"] == int(np.floor(1 + (budget_s - hf_row["prefill_s"]) * hf_row["decode_tok_s"]))
    assert hf_row["fits"] == ("yes" if hf_row["max_output_tokens"] >= 100 else "no")
    one = tables.verdict(df, 9.0, 1300, 1).set_index("runtime")  # 1 wanted token: no decode rate needed
    assert one.loc["llama.cpp Q4_1", "fits"] == "yes"
    assert one.loc["llama.cpp Q4_1", "s_per_sample"] == pytest.approx(one.loc["llama.cpp Q4_1", "prefill_s"])
    tight = tables.verdict(df, 1e-9, 1300, 100).set_index("runtime")  # the first token misses the budget
    assert tight.loc["llama.cpp Q4_1", "max_output_tokens"] == 0 and tight.loc["llama.cpp Q4_1", "fits"] == "no"


@pytest.mark.parametrize("col", ["decode_tok_s", "prefill_s", "input_tokens", "output_tokens", "total_s",
                                 "throughput_tok_s", "peak_rss_mb"])
def test_a_whole_null_column_renders(rows_with_undefined_decode, col, tmp_path):
    df = rows_with_undefined_decode.assign(**{col: None})  # as read back from rows with nulls
    text = _every_table_and_figure(df, tmp_path)
    assert not NAN.search(text), text
