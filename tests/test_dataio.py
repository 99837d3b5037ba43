"""The competition's CSV format: round trips, and each kind of bad file named by row and column."""
import json
import os

import pandas as pd
import pytest

from shared.task import dataio
from shared.errors import DataFileError

ROWS = pd.DataFrame({
    "id": ["a1", "b2", "c3"],
    "original_text": ["The bus leaves at nine.", 'She said "hi",\nthen left.', "NA"],
    "rewritten_text": ["Arr, the bus sails at nine!", "Greetings were offered, then she departed.", "null"],
    "rewrite_prompt": ["Rewrite this as a pirate.", "Make it formal.", "Keep it."],
})


def test_csv_round_trip_keeps_every_cell(tmp_path):
    path = dataio.write_csv(ROWS, tmp_path / "pairs.csv")
    back = dataio.read_pairs(path)
    pd.testing.assert_frame_equal(back, ROWS)  # quotes, commas, newlines, "NA" and "null" survive
    assert not list(tmp_path.glob(".*tmp"))    # no temporary file left behind


def test_jsonl_reads_the_same_rows(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS.to_dict("records")) + "\n")
    pd.testing.assert_frame_equal(dataio.read_pairs(path), ROWS)


def test_test_file_without_prompt_is_fine(tmp_path):
    path = dataio.write_csv(ROWS.drop(columns="rewrite_prompt"), tmp_path / "test.csv")
    assert list(dataio.read_pairs(path).columns) == list(dataio.REQUIRED)


def test_lab_validation_rows_in_competition_format(tmp_path):
    rows = pd.DataFrame({"text_id": ["t1", "t2", "t3"], "prompt_id": ["p1", "p2", "p3"],
                         "original": ["x one", "x two", "x three"], "rewritten": ["y one", "", "y three"],
                         "prompt": ["P one", "P two", "P three"], "error": [None, None, None]})
    pairs = dataio.from_validation(rows)
    assert list(pairs["id"]) == ["t1__p1", "t3__p3"]  # the blank rewrite is not a pair
    back = dataio.read_pairs(dataio.write_csv(pairs, tmp_path / "lab.csv"))
    pd.testing.assert_frame_equal(back, pairs)
    assert list(dataio.to_lab(back).columns) == ["id", "original", "rewritten", "prompt"]


def _csv(tmp_path, text: str | bytes, name="bad.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("content, message", [
    ("id,original_text\n1,hello\n", r"missing column\(s\) rewritten_text"),
    ("id,original_text,rewritten_text\n1,hello,\n", r"row 1, column 'rewritten_text': empty cell"),
    ("id,original_text,rewritten_text\n1,a,b\n2,c,   \n", r"row 2, column 'rewritten_text': empty"),
    ("id,original_text,rewritten_text\nx,a,b\ny,c,d\nx,e,f\n", r"id 'x' appears in rows 1, 3"),
    ("id,original_text,rewritten_text\n1,a,b,c,d\n", r"not a readable CSV"),
    ("", r"empty"),
    ('{"id": 1, "text": "not a csv"}\n', r"not a CSV with columns"),
])
def test_bad_csv_is_named_by_row_and_column(tmp_path, content, message):
    with pytest.raises(DataFileError, match=message):
        dataio.read_pairs(_csv(tmp_path, content))


def test_encoding_error_names_the_line(tmp_path):
    path = _csv(tmp_path, "id,original_text,rewritten_text\n1,caf\xe9,b\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"line 2 .* not UTF-8"):
        dataio.read_pairs(path)


def test_binary_file_is_not_a_csv(tmp_path):
    with pytest.raises(DataFileError, match="not a text file"):
        dataio.read_pairs(_csv(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00"))


def test_non_text_cell_in_json_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "original_text": "x", "rewritten_text": "y"}\n'
                    '{"id": "b", "original_text": 42, "rewritten_text": "y"}\n')
    with pytest.raises(DataFileError, match=r"row 2, column 'original_text': expected text, got int"):
        dataio.read_pairs(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        dataio.read_pairs(tmp_path / "nope.csv")


def test_failed_write_leaves_the_old_file_whole(tmp_path):
    path = dataio.write_csv(ROWS, tmp_path / "pairs.csv")
    before = path.read_bytes()

    class Boom(pd.DataFrame):
        def to_csv(self, f, **kw):
            f.write("id,orig")          # half a file...
            raise OSError("disk full")  # ...then the failure

    with pytest.raises(DataFileError, match=r"pairs.csv: could not be written \(disk full\); the file there is unchanged"):
        dataio.write_csv(Boom(ROWS), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]


def test_submission_refuses_blanks(tmp_path):
    with pytest.raises(DataFileError, match=r"row 2, column 'rewrite_prompt': blank"):
        dataio.write_submission(["a", "b"], ["Make it formal.", " "], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_a_written_csv_has_the_mode_a_plain_open_gives(tmp_path):
    """A fresh user's submission.csv came out -rw------- (mkstemp's 0600) beside a 0644 sidecar:
    a new file gets 0666 less the umask, a replaced file keeps its own mode."""
    import pandas as pd
    df = pd.DataFrame({"id": ["a"], "rewrite_prompt": ["Improve this text."]})
    old = os.umask(0o022)
    try:
        new = dataio.write_csv(df, tmp_path / "submission.csv")
        assert new.stat().st_mode & 0o777 == 0o644
        new.chmod(0o640)
        dataio.write_csv(df, new)
        assert new.stat().st_mode & 0o777 == 0o640
        os.umask(0o077)
        assert dataio.write_csv(df, tmp_path / "private.csv").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
