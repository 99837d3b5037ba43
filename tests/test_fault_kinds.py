"""Fault kinds found by trying public bug reports against the lab (issue 17), each with the
other inputs of the same kind: torn JSON lines, concurrent cache builds, long CSV cells, CPU
affinity, the encoder's label, validation-set names and paths, papermill's parameter inference,
missing predictions."""
import json
import warnings

import pandas as pd
import pytest

from shared import results, submit

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
    from shared import dataio, prompts
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
