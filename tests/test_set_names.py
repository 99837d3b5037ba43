"""A validation-set name or path a user types works, or fails with what exists, before compute
(issue 17; once in tests/test_fault_kinds.py).
"""

import pytest

from shared import results
from shared.machine import REPO

# --- 17.9 a set name or path a user types works, or fails with what exists, before compute --------

RES = REPO / "res" / "01_biggest_model"
NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


@pytest.fixture
def sets(tmp_path):
    """A results folder with the committed Qwen set, a set whose rewrites all failed, a speed
    table, and the Qwen set's competition CSV under an upper-case name."""
    import shutil
    res = tmp_path / "res"
    res.mkdir()
    shutil.copy(RES / "validation_qwen.jsonl", res)
    shutil.copy(RES / "validation_qwen.csv", res / "TRAIN.CSV")
    results.append(res / "validation_failed.jsonl", {"original": "a", "rewritten": "", "prompt": "p",
                                                     "error": "RuntimeError: out of memory"})
    results.append(res / "speed.jsonl", {"model": "m", "decode_tok_s": 1.0})
    return res


def test_a_set_name_and_the_same_set_as_a_file_read_alike(sets, monkeypatch):
    from shared.task import validation
    monkeypatch.chdir(sets.parent)
    pairs, name = validation.load_set("validation_qwen", sets)
    assert name == "validation_qwen" and len(pairs) == 24 and {"original", "rewritten", "prompt", "split"} <= set(pairs)
    for typed in ["validation_qwen.jsonl", "res/validation_qwen.jsonl", sets / "validation_qwen.jsonl",
                  " validation_qwen "]:
        again, name = validation.load_set(typed, sets)
        assert name == "validation_qwen" and again.equals(pairs), typed


@pytest.mark.parametrize("typed", ["TRAIN.CSV", "res/TRAIN.CSV", "Train.Csv"])
def test_a_competition_csv_in_any_letter_case_and_relative_to_any_folder(sets, typed, monkeypatch, tmp_path):
    from shared.task import validation
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(sets.parent if typed.startswith("res/") else elsewhere)
    if typed == "Train.Csv":
        (sets / "TRAIN.CSV").rename(sets / "Train.Csv")
    pairs, name = validation.load_set(typed, sets)
    assert name == typed.split("/")[-1].split(".")[0] and len(pairs) == 24
    assert {"id", "original", "rewritten", "prompt"} <= set(pairs)


def test_a_path_relative_to_the_repository_works_from_another_folder(tmp_path, monkeypatch):
    from shared.task import validation
    monkeypatch.chdir(tmp_path)
    pairs, name = validation.load_set("res/01_biggest_model/validation_qwen.csv", tmp_path / "res")
    assert name == "validation_qwen" and len(pairs) == 24


@pytest.mark.parametrize("typed, message", [
    ("validation_qwem", r"no .*validation_qwem\.jsonl.*did you mean 'validation_qwen'.*validation_failed, validation_qwen"),
    ("Validation_Qwen", "did you mean 'validation_qwen'"),
    ("validation_qwem.csv", r"'validation_qwem.csv': no such file \(looked for .*did you mean 'validation_qwen'"),
    ("../validation_qwen.jsonl", "no such file"),
    ("", "validation_set is ''"),
    ("   ", "validation_set is"),
    (None, "validation_set is None"),
    ("validation_failed", "none of its 1 rows has a rewrite"),
    ("speed", r"not a validation set \(no column original, rewritten, prompt\)"),
    ("speed.jsonl", "missing column"),                     # read as a competition file: says which
])
def test_a_mistyped_set_is_a_clear_error(sets, typed, message, monkeypatch):
    from shared.task import validation
    from shared.errors import LabError
    monkeypatch.chdir(sets)
    with pytest.raises(LabError, match=message):
        validation.load_set(typed, sets)


def test_a_csv_without_prompts_cannot_be_scored_and_says_so(sets):
    from shared.task import dataio, validation
    from shared.errors import LabError
    pairs = dataio.read_pairs(sets / "TRAIN.CSV").drop(columns="rewrite_prompt")
    dataio.write_csv(pairs, sets / "test.csv")
    with pytest.raises(LabError, match="missing column.*rewrite_prompt"):
        validation.load_set("test.csv", sets)


@pytest.mark.parametrize("name", ["validation_x.jsonl", "validation_x.CSV", "sub/validation_x",
                                  "../validation_x", "", " ", "a b"])
def test_a_set_name_to_make_is_a_plain_name(name, tmp_path):
    from shared.task import validation
    from shared.errors import LabError
    with pytest.raises(LabError, match="set name|the set name"):
        validation.set_table(name, tmp_path)
    assert validation.set_table("validation_x-2.v1", tmp_path) == tmp_path / "validation_x-2.v1.jsonl"


@pytest.mark.slow
def test_the_notebook_stops_at_a_mistyped_set_before_loading_anything(tmp_path):
    """The reported case: -p validation_set validation_qwem ended in KeyError: 'error'."""
    import papermill
    with pytest.raises(papermill.PapermillExecutionError) as e:
        papermill.execute_notebook(NOTEBOOKS / "prompt_engineering.ipynb", tmp_path / "out.ipynb",
                                   cwd=REPO, progress_bar=False, kernel_name="python3",
                                   parameters={"validation_set": "validation_qwem", "results_dir": str(RES)})
    assert e.value.ename == "LabError" and "did you mean 'validation_qwen'" in e.value.evalue
