"""A competition file as a validation set, blank cells, an --out that is an input, an output that
cannot be written (issue 24; once in tests/test_fault_kinds_24.py).

Root ignores permission bits, so a read-only place here is one that refuses root too: sysfs
(/sys refuses to create any file, EPERM/EACCES, for every user) and a path whose parent is a
regular file (ENOTDIR). A full disk is RLIMIT_FSIZE in a child process (`ulimit -f`: the write
that crosses it is cut short, the next one fails with EFBIG, as a filling disk does with ENOSPC)
and /dev/full (every write ENOSPC); neither needs root or a mount.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from shared import results
from shared.task import dataio, metrics, shards, submit, validation
from shared.errors import LabError
from shared.machine import REPO

from lab_inputs import OPTIONS, PAIRS, SMOL, needs_read_only, no_load

RES = REPO / "res" / "01_biggest_model"
NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


# --- 24.1 a competition file as a validation set; an older set without a split ------------------

@pytest.mark.parametrize("form", ["absolute", "TRAIN.CSV", "jsonl"])
def test_a_competition_file_as_a_validation_set_has_each_column_once(form, tmp_path, monkeypatch):
    """The regression: check_pairs listed rewrite_prompt twice, so pairs["prompt"] was a frame."""
    csv = RES / "validation_qwen.csv"
    truth = dataio.read_pairs(csv)
    if form == "absolute":
        typed = str(csv)
    elif form == "TRAIN.CSV":
        shutil.copy(csv, tmp_path / "TRAIN.CSV")
        monkeypatch.chdir(tmp_path)
        typed = "TRAIN.CSV"
    else:
        results.append(tmp_path / "train.jsonl", truth.to_dict("records"))
        typed = str(tmp_path / "train.jsonl")
    pairs, _ = validation.load_set(typed, tmp_path)
    assert list(pairs.columns) == ["id", "original", "rewritten", "prompt"]
    assert pairs["prompt"].tolist() == truth["rewrite_prompt"].tolist()       # 24 prompts, in order
    assert pairs["original"].tolist() == truth["original_text"].tolist()
    checked = dataio.check_pairs(truth, required=(*dataio.REQUIRED, dataio.PROMPT))
    assert list(checked.columns) == [*dataio.REQUIRED, dataio.PROMPT]


def test_an_older_set_without_a_split_gets_the_one_make_rows_gives():
    """with_split on the committed Qwen set without its split column gives back its recorded split."""
    rows = results.read(RES / "validation_qwen.jsonl")
    derived = validation.with_split(rows.drop(columns="split"), 0.5, seed=99)  # the set's own seed (0) wins
    assert derived["split"].tolist() == rows["split"].tolist()
    assert validation.with_split(rows, 0.5, 0) is rows                      # a recorded split is kept


@pytest.mark.slow
def test_make_validation_set_with_its_defaults_reuses_the_committed_set(tmp_path):
    """The reported case: the notebook's own defaults reuse validation_smollm2.jsonl (made before
    splits were recorded) and stopped with KeyError: 'split'. Nothing is loaded: the set exists."""
    import nbformat

    from shared.run import notebooks
    shutil.copy(RES / "validation_smollm2.jsonl", tmp_path)
    notebooks.execute(NOTEBOOKS / "make_validation_set.ipynb", tmp_path / "out.ipynb", cwd=REPO,
                      parameters={"results_dir": str(tmp_path)}, progress_bar=False)
    shown = json.dumps([c.get("outputs", []) for c in nbformat.read(tmp_path / "out.ipynb", 4).cells])
    assert "already holds 24 rows: reused" in shown and "held_out" in shown
    rows = results.read(RES / "validation_smollm2.jsonl")
    assert len(dataio.read_pairs(tmp_path / "validation_smollm2.csv")) == len(dataio.from_validation(rows))


# --- 24.2 a blank cell never loses the submission ------------------------------------------------

BLANK_CSV = ("id,original_text,rewritten_text\n"
             'z9,The bus leaves at nine.,"Arr, the bus sails at nine, matey!"\n'
             "e1,,Someone rewrote nothing.\n"                 # an empty original_text
             'a1,Dinner is at six.,"   "\n'                     # a rewritten_text of spaces
             "e2,,\n"                                          # both empty, the id kept
             ",,\n,,\n")                                       # Excel's trailing rows of nothing


def test_blank_cells_get_the_fallback_and_every_id_an_answer(tmp_path, capsys):
    """The reported case (vllm-project/vllm#16732's kind): one blank cell refused the whole file."""
    test = tmp_path / "test.csv"
    test.write_text(BLANK_CSV)
    out = tmp_path / "submission.csv"
    assert submit.main([str(test), "--strategy", "direct", "--model", SMOL, "--n-threads", "2",
                        "--max-new-tokens", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sub["id"].tolist() == ["z9", "e1", "a1", "e2"]                      # the ,, rows skipped
    assert sub["rewrite_prompt"].tolist()[1:] == [metrics.FALLBACK_PROMPT] * 3
    # the one row with both texts got the answer it gets alone (greedy: the same)
    alone = submit.run(dataio.write_csv(PAIRS.head(1), tmp_path / "one.csv"), "direct", tmp_path / "one_out.csv",
                       **OPTIONS)
    assert alone["computed"] == 1
    assert sub["rewrite_prompt"][0] == pd.read_csv(tmp_path / "one_out.csv", dtype=str)["rewrite_prompt"][0]
    assert "(1 computed now" in printed and "BLANK: 3 rows had nothing to read" in printed
    assert "id 'e1', 'a1', 'e2'" in printed
    assert len(submit.sidecar(out).read_text().splitlines()) == 1             # only the computed row


def test_json_nulls_and_a_row_of_nulls_in_json_lines(tmp_path, monkeypatch):
    no_load(monkeypatch)  # every row blank: nothing to compute, nothing loaded
    test = tmp_path / "test.jsonl"
    test.write_text('{"id": "n1", "original_text": null, "rewritten_text": "x"}\n'
                    '{"id": "n2", "original_text": "x", "rewritten_text": null}\n'
                    '{"id": null, "original_text": null, "rewritten_text": null}\n'
                    '{"id": "n3", "original_text": "", "rewritten_text": " \\t"}\n')
    summary = submit.run(test, "direct", tmp_path / "s.csv", **OPTIONS)
    assert (summary["rows"], summary["blank_inputs"], summary["computed"]) == (3, 3, 0)
    assert summary["blank_ids"] == ["n1", "n2", "n3"] and summary["fallbacks"] == 3
    assert pd.read_csv(tmp_path / "s.csv")["rewrite_prompt"].tolist() == [metrics.FALLBACK_PROMPT] * 3


def test_a_blank_cell_in_the_test_file_does_not_stop_the_merge(tmp_path):
    test = tmp_path / "test.csv"
    test.write_text(BLANK_CSV)
    ids = ["z9", "e1", "a1", "e2"]
    parts = [dataio.write_submission(ids[i::2], [f"answer {x}" for x in ids[i::2]], tmp_path / f"p{i}.csv")
             for i in (0, 1)]
    assert shards.merge(test, parts, tmp_path / "merged.csv")["rows"] == 4
    assert pd.read_csv(tmp_path / "merged.csv")["id"].tolist() == ids


def test_a_row_of_empty_cells_is_skipped_and_a_blank_id_still_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,original_text,rewritten_text,rewrite_prompt\n1,a,b,p\n,,,\n ,  ,,\n2,c,d,q\n,,,\n")
    assert dataio.read_pairs(path)["id"].tolist() == ["1", "2"]               # strict reading too
    path.write_text("id,original_text,rewritten_text\n1,a,b\n,c,d\n")
    with pytest.raises(dataio.DataFileError, match="row 2, column 'id': empty cell"):
        dataio.read_pairs(path, blanks=True)


def test_a_validation_csv_with_a_blank_cell_scores_the_other_rows(tmp_path):
    truth = dataio.read_pairs(RES / "validation_qwen.csv")
    holed = truth.copy()
    holed.loc[3, "rewritten_text"] = ""
    holed.loc[5, "rewrite_prompt"] = " "
    dataio.write_csv(holed, tmp_path / "train.csv")
    pairs, _ = validation.load_set(str(tmp_path / "train.csv"), tmp_path)
    assert pairs["id"].tolist() == [i for k, i in enumerate(truth["id"]) if k not in (3, 5)]


# --- 24.7 an --out that is one of the inputs ----------------------------------------------------------

@pytest.mark.parametrize("form", ["same", "relative", "symlink", "hard link", "sidecar"])
def test_out_naming_the_input_is_refused_before_loading(form, tmp_path, monkeypatch):
    """The reported case (mapequation/infomap#907's kind): --out test.csv replaced the input."""
    no_load(monkeypatch)
    monkeypatch.chdir(tmp_path)
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    out = {"same": test, "relative": Path("./sub/../test.csv"), "symlink": tmp_path / "link.csv",
           "hard link": tmp_path / "hard.csv", "sidecar": tmp_path / "s.csv"}[form]
    (tmp_path / "sub").mkdir()
    if form == "symlink":
        out.symlink_to(test)
    elif form == "hard link":
        os.link(test, out)
    elif form == "sidecar":  # the input is the file the run appends its rows to
        test = submit.sidecar(out)
        results.append(test, PAIRS.to_dict("records"))
    before = test.read_bytes()
    with pytest.raises(LabError, match="is the input .*writing it would replace the input"):
        submit.run(test, "direct", out, **OPTIONS)
    assert test.read_bytes() == before
    assert submit.main([str(test), "--strategy", "direct", "--model", SMOL, "--out", str(out)]) == 2


def test_the_merge_refuses_an_out_that_is_the_input_or_a_part(tmp_path):
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    part = dataio.write_submission(PAIRS["id"], ["Make it so."] * 4, tmp_path / "part.csv")
    (tmp_path / "link.csv").symlink_to(part)
    snapshot = {p: p.read_bytes() for p in (test, part)}
    for out in (test, part, tmp_path / "link.csv"):
        assert shards.main([str(test), str(part), "--out", str(out)]) == 2
    assert {p: p.read_bytes() for p in (test, part)} == snapshot
    assert shards.main([str(test), str(part), "--out", str(tmp_path / "merged.csv")]) == 0


# --- 24.8 an output that cannot be written: a read-only folder, a full disk ---------------------------

@needs_read_only
def test_a_read_only_output_folder_is_refused_before_loading(tmp_path, monkeypatch):
    """The reported case (SlicerMorph/SlicerMorph#45's kind): a PermissionError traceback after
    the model loaded and a row was computed."""
    no_load(monkeypatch)
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    with pytest.raises(LabError, match=r"--out /sys/kernel/s.csv: folder /sys/kernel cannot be written"):
        submit.run(test, "direct", "/sys/kernel/s.csv", **OPTIONS)
    with pytest.raises(LabError, match=r"--out /sys/kernel/m.csv: folder /sys/kernel cannot be written"):
        shards.merge(test, [test], "/sys/kernel/m.csv")
    from shared.run import experiment
    with pytest.raises(results.TableWriteError, match="folder /sys/kernel cannot be written"):
        experiment.run([{"model": SMOL}], lambda config: pytest.fail("measured"), "/sys/kernel/t.jsonl",
                       isolate=False)


def test_a_sidecar_that_cannot_be_appended_is_refused_before_loading(tmp_path, monkeypatch):
    no_load(monkeypatch)
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    submit.sidecar(tmp_path / "s.csv").mkdir()          # a folder where the rows would go
    with pytest.raises(LabError, match=r"s.csv.partial.jsonl is a folder"):
        submit.run(test, "direct", tmp_path / "s.csv", **OPTIONS)


def test_a_disk_that_is_full_stops_the_run_with_a_clear_error(tmp_path):
    """/dev/full as the sidecar: the first row cannot be written, no submission is written."""
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    out = tmp_path / "s.csv"
    submit.sidecar(out).symlink_to("/dev/full")
    with pytest.raises(LabError, match=r"stopped: .*s.csv.partial.jsonl: the row was not written \(No space "
                                       r"left on device\).*free space on its disk"):
        submit.run(test, "fixed_prompt", out, progress=False)
    assert not out.exists()


FULL_DISK_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)         # EFBIG instead of the signal's kill
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from shared.task import submit
sys.exit(submit.main(sys.argv[2:]))
"""


def test_a_disk_that_fills_while_rows_are_appended_keeps_every_whole_row(tmp_path):
    """The reported case: the row that crossed the limit was half-written without a word (the
    short write was not checked), the next one raised a traceback. Now the half row is cut off,
    the run stops with one line, and the same command resumes from the rows kept."""
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    args = [str(test), "--strategy", "direct", "--model", SMOL, "--n-threads", "2", "--max-new-tokens", "8",
            "--no-reuse-prefix"]  # a resumed row then gets the answer it got in one run
    reference = tmp_path / "reference.csv"
    assert submit.main([*args, "--out", str(reference)]) == 0
    lines = submit.sidecar(reference).read_bytes().splitlines(keepends=True)
    limit = len(lines[0]) + len(lines[1]) + len(lines[2]) // 2   # room for two rows and half a third
    out = tmp_path / "s.csv"
    done = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(limit), *args, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "error: stopped:" in done.stderr and "File too large" in done.stderr
    kept = submit.sidecar(out).read_text().splitlines()
    assert len(kept) == 2 and [json.loads(line)["id"] for line in kept] == ["z9", "a1"]  # whole rows only
    assert not out.exists()
    again = subprocess.run([sys.executable, "-m", "shared.task.submit", *args, "--out", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "2 already done" in again.stdout
    assert out.read_bytes() == reference.read_bytes()                 # the same answers as one run


def test_an_append_the_disk_takes_in_part_is_cut_back(tmp_path):
    """results.append in a child under a file-size limit: the row that crosses it leaves nothing."""
    path = tmp_path / "t.jsonl"
    results.append(path, [{"a": 1}, {"a": 2}])
    size = path.stat().st_size
    child = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 5}, resource.RLIM_INFINITY)); "
             "from shared import results\n"
             f"try:\n    results.append({str(path)!r}, {{'a': 3, 'pad': 'x' * 50}})\n"
             "except results.TableWriteError as e:\n    print(e); sys.exit(3)")
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 3 and "the row was not written (File too large)" in done.stdout, done.stderr
    assert path.stat().st_size == size and results.read(path)["a"].tolist() == [1, 2]
