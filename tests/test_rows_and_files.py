"""A torn JSON line never swallows the next row; a missing prediction is the fallback; the lab
reads every CSV it writes (issue 17; once in tests/test_fault_kinds.py).
"""
import json
import warnings

import pandas as pd
import pytest

from shared import results
from shared.task import submit

# --- 17.1 a torn JSON line never swallows the next row ------------------------------------------


@pytest.mark.parametrize("torn, kept", [
    (b'{"a": 2, "b', [1, 3, 4, 5]), (b'{"a": 2', [1, 3, 4, 5]), (b"{", [1, 3, 4, 5]),
    (b'{"a": "\xc3', [1, 3, 4, 5]),             # cut inside a UTF-8 character
    (b"\x00\x00\x00", [1, 3, 4, 5]),            # a crash before the data reached the disk
    (b'{"a": 2}', [1, 2, 3, 4, 5]),              # a whole row whose newline was lost
    (b'{"a": 2}\r', [1, 2, 3, 4, 5])])           # a CRLF cut after the CR
def test_a_row_appended_after_a_torn_line_is_kept(tmp_path, torn, kept):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n' + torn)
    results.append(path, {"a": 3})
    results.append(path, [{"a": 4}, {"a": 5}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = results.read(path)
    assert df["a"].tolist() == kept
    assert len(caught) == (2 not in kept) and all("torn" in str(w.message) for w in caught)


def test_appending_to_an_empty_or_whole_file_adds_no_blank_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.touch()
    results.append(path, {"a": 1})
    results.append(path, {"a": 2})
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_a_line_that_is_json_but_not_an_object_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n12\nnull\n[1, 2]\n{"a": 2}\n')
    with pytest.warns(UserWarning, match="torn"):
        assert results.read(path)["a"].tolist() == [1, 2]


def test_a_resumed_submission_keeps_the_row_written_after_a_torn_one(tmp_path):
    """The reported case: each resume after a torn write must keep what the resume before did."""
    from shared.task import dataio, prompts
    pairs = pd.DataFrame({"id": ["a", "b", "c", "d"], "original_text": list("wxyz"),
                          "rewritten_text": list("WXYZ")})
    csv = dataio.write_csv(pairs, tmp_path / "test.csv")
    out = tmp_path / "submission.csv"

    def stop_at(row_id):
        def recover(lm, strategy, original, rewritten, **kw):
            if original == row_id:
                raise KeyboardInterrupt
            return prompts.recover(lm, strategy, original, rewritten, **kw)
        return recover

    kw = dict(strategy="fixed_prompt", out=out, progress=False)
    with pytest.raises(KeyboardInterrupt):
        submit.run(csv, _recover=stop_at("y"), **kw)          # a and b done
    with open(submit.sidecar(out), "ab") as f:
        f.write(b'{"id": "c", "strat')                          # killed mid-write
    with pytest.raises(KeyboardInterrupt):
        submit.run(csv, _recover=stop_at("z"), **kw)          # c done again
    with pytest.warns(UserWarning, match="torn"):
        summary = submit.run(csv, **kw)
    assert (summary["computed"], summary["resumed"]) == (1, 3)  # only d is left
    assert json.loads(submit.sidecar(out).read_text().splitlines()[-1])["id"] == "d"


# --- 17.11 a missing prediction is the fallback, never the words "nan" or "<NA>" ------------------

MISSING = [None, float("nan"), "", "  \n", pd.NA, pd.NaT]


def _missing_kinds():
    import numpy as np
    return [*MISSING, np.nan, np.float32("nan"), np.float16("nan"), np.datetime64("NaT"),
            __import__("decimal").Decimal("NaN")]


def test_every_missing_value_becomes_the_fallback_and_is_counted():
    from shared.task import metrics
    kinds = _missing_kinds()
    preds, n = metrics.clean_predictions(["Make it rhyme.", *kinds, "nan", "None", 0])
    assert preds == ["Make it rhyme."] + [metrics.FALLBACK_PROMPT] * len(kinds) + ["nan", "None", "0"]
    assert n == len(kinds)  # the text "nan" someone typed stays a prediction


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_a_dataframe_column_with_missing_cells_is_cleaned(dtype):
    from shared.task import metrics
    column = pd.Series(["Make it formal.", None, "", float("nan")], dtype=dtype)
    assert metrics.clean_predictions(column) == (["Make it formal."] + [metrics.FALLBACK_PROMPT] * 3, 3)


def test_read_back_rows_with_null_predictions_are_cleaned(tmp_path):
    from shared.task import metrics
    results.append(tmp_path / "t.jsonl", [{"prediction": "Shorten it."}, {"prediction": None}, {"x": 1}])
    preds, n = metrics.clean_predictions(results.read(tmp_path / "t.jsonl")["prediction"])
    assert (preds, n) == (["Shorten it.", metrics.FALLBACK_PROMPT, metrics.FALLBACK_PROMPT], 2)


@pytest.mark.parametrize("bad", [None, float("nan"), pd.NA, 3])
def test_scoring_refuses_what_is_not_text_before_embedding(bad):
    from shared.task import metrics
    from shared.errors import LabError

    class NoEncoder:  # the check comes first: nothing is embedded
        name = "none"

        def embed(self, texts):
            raise AssertionError("embedded a value that is not text")

    with pytest.raises(LabError, match="clean_predictions"):
        metrics.scs(["Make it formal.", bad], ["Make it formal.", "Make it rhyme."], NoEncoder())
    with pytest.raises(LabError, match="truth 0"):
        metrics.scs(["Make it formal."], pd.Series([bad], dtype=object), NoEncoder())


def test_a_cleaned_column_scores_as_the_fallback_on_the_real_encoder():
    from shared.task import metrics
    enc = metrics.load_encoder("all-MiniLM-L6-v2")
    column = pd.Series(["Make it formal.", float("nan")])
    preds, _ = metrics.clean_predictions(column)
    truth = ["Make it formal.", "Improve this text."]
    assert metrics.scs(preds, truth, enc) == pytest.approx([1.0, 1.0], abs=1e-5)


# --- 17.4 the lab reads every CSV it writes, whatever the length of a cell ------------------------

LONG_CELLS = {
    "ascii": "word " * 40_000,                         # 200,000 characters (the report)
    "limit": "x" * 131_072, "limit+1": "x" * 131_073,  # csv's default field_size_limit and one more
    "cjk": "漢字かな交じり文" * 25_000,                   # 3 bytes a character
    "emoji": "🦜" * 150_000,                            # 4 bytes a character, 600 kB
    "arabic, quoted newlines, CRLF": ("نص عربي, \"مقتبس\"\r\nسطر جديد\n" * 8_000),
}


@pytest.mark.parametrize("kind", LONG_CELLS)
def test_a_long_cell_written_by_write_csv_reads_back(tmp_path, kind):
    import csv

    from shared.task import dataio
    long = LONG_CELLS[kind]
    pairs = pd.DataFrame({"id": ["007", "b"], "original_text": [long, "short"],
                          "rewritten_text": ["Short.", long], "rewrite_prompt": [long[:140_000], "p"]})
    path = dataio.write_csv(pairs, tmp_path / "long.csv")
    limit = csv.field_size_limit()
    back = dataio.read_pairs(path)
    assert back.equals(pairs) and csv.field_size_limit() == limit  # the global limit is restored
    assert pd.read_csv(path, dtype=str, keep_default_na=False).equals(pairs)  # pandas agrees


def test_submit_accepts_a_long_cell_as_csv_like_as_json_lines(tmp_path):
    from shared.task import dataio
    pairs = pd.DataFrame({"id": ["a", "b"], "original_text": ["word " * 40_000, "Short."],
                          "rewritten_text": ["Short.", "Shorter."]})
    for name in ("long.csv", "long.jsonl"):
        path = tmp_path / name
        if name.endswith(".csv"):
            dataio.write_csv(pairs, path)
        else:
            results.append(path, pairs.to_dict("records"))
        out = tmp_path / f"{name}.submission.csv"
        assert submit.main([str(path), "--strategy", "fixed_prompt", "--out", str(out)]) == 0
        assert pd.read_csv(out)["id"].tolist() == ["a", "b"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_csv_with_a_byte_order_mark_reads_in_its_encoding(tmp_path, encoding):
    """pandas and Excel write UTF-16 with a BOM; it was refused as 'not a text file'."""
    import codecs

    from shared.task import dataio
    pairs = pd.DataFrame({"id": ["1", "2"], "original_text": ["Grüße, 漢字 🦜", "x" * 140_000],
                          "rewritten_text": ["b", "c"]})
    path = tmp_path / "pairs.csv"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")  # the -be codec writes none
    path.write_bytes(bom + pairs.to_csv(index=False).encode(encoding))
    assert dataio.read_pairs(path).equals(pairs)
