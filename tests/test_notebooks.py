"""Each notebook is paired (.py and .ipynb agree) and runs under papermill with small parameters."""
import json
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest

from shared import machine, results
from shared.run import notebooks
from shared.machine import REPO

ITERATION = REPO / "iterations" / "01_biggest_model"
NOTEBOOKS = sorted(p.stem for p in ITERATION.glob("*.ipynb"))
SMALL = {
    "speed": dict(models=["smollm2-135m-instruct"], backends=["transformers", "llama_cpp"],
                  quantizations=["none"], input_tokens=16, max_new_tokens=3, repetitions=1),
    "length_scaling": dict(models=["smollm2-135m-instruct"], backends=["transformers", "llama_cpp"],
                           input_lengths=[8, 16], output_lengths=[2, 4], batch_sizes=[1, 2],
                           fixed_input_tokens=8, fixed_output_tokens=2, repetitions=1),
    "roofline": dict(threads=1, peak_array_mb=64, candidates=["phi-2", "mistral-7b-instruct-v0.2"],
                     quantizations=["Q4_K_M"], hardware=["T4"]),
    "eos": dict(models=["smollm2-135m-instruct"], backends=["llama_cpp"],
                questions=["Say hi."], max_new_tokens=8),
    "make_validation_set": dict(n_samples=4, max_new_tokens=24),
    "prompt_engineering": dict(strategies=["fixed_prompt", "mean_prompt", "direct", "direct_mean",
                                           "few_shot_direct_mean"],
                               n_samples=2, max_new_tokens=12, mean_prompt_steps=3,
                               text_cut_strategy="direct", text_cut_tokens=[8, 384]),
    # the embedded SmolLM2 on 4 rows of the lab's CSV (written by the test, see below)
    "submission": dict(wheelhouse="", strategy="direct", model="smollm2-135m-instruct", device="auto",
                       max_new_tokens=8, n_threads=2, encoder="all-MiniLM-L6-v2"),
}
NEEDS = {"prompt_engineering": "make_validation_set"}  # runs first, into the same folder
NO_FIGURE = {"make_validation_set", "submission"}


def test_every_notebook_has_small_parameters_here():
    assert set(NOTEBOOKS) <= set(SMALL), "add the new notebook's smallest parameters to SMALL"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_py_and_ipynb_are_in_sync(name):
    py = jupytext.read(ITERATION / f"{name}.py")
    ipynb = jupytext.read(ITERATION / f"{name}.ipynb")
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in ipynb.cells], \
        f"run `make sync` (jupytext --sync) for {name}"
    assert notebooks.unsynced(ITERATION / f"{name}.ipynb") is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell(name):
    nb = jupytext.read(ITERATION / f"{name}.py")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "results_dir" in tagged[0].source


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_papermill(name, tmp_path):
    files = {}
    if name == "submission":  # a small competition file in, submission.csv out
        from shared.task import dataio
        four = dataio.read_pairs(REPO / "res" / "01_biggest_model" / "validation_qwen.csv").head(4)
        files = {"test_csv": str(dataio.write_csv(four, tmp_path / "test.csv")),
                 "out": str(tmp_path / "submission.csv")}
    for step in ([NEEDS[name]] if name in NEEDS else []) + [name]:
        notebooks.execute(ITERATION / f"{step}.ipynb", tmp_path / f"{step}.ipynb", cwd=REPO,
                          parameters={**SMALL[step], **files, "results_dir": str(tmp_path)},
                          progress_bar=False)
    executed = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    assert executed.metadata.papermill.input_path == f"iterations/01_biggest_model/{name}.ipynb"
    shown = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "TqdmWarning" not in shown and "IProgress not found" not in shown  # ipywidgets is there
    assert str(REPO) not in shown  # repository-relative paths in outputs
    tables = list(tmp_path.glob("*.jsonl"))
    assert tables, "the notebook recorded no results"
    for table in tables:
        df = results.read(table)
        if "status" in df:
            assert (df["status"] == "ok").all(), df.get("error")
        assert df.get("error", pd.Series(dtype=object)).isna().all()
    if name not in NO_FIGURE:
        assert list(tmp_path.glob("*.png")), "the notebook saved no figure"
    if name == "submission":
        sub = pd.read_csv(tmp_path / "submission.csv", dtype=str)
        assert list(sub["id"]) == list(four["id"]) and sub["rewrite_prompt"].str.strip().ne("").all()
        row = results.read(tmp_path / "submissions.jsonl").iloc[-1]
        assert row["computed"] == 4 and row["device"] == "cpu" and row["score_n"] == 4
        text = "".join(o.get("text", "") for c in nbformat.read(tmp_path / "submission.ipynb", 4).cells
                       for o in c.get("outputs", []))
        assert "SCS" in text and "samples/s" in text


def test_outputs_show_repository_relative_paths(tmp_path):
    assert machine.shown(REPO / "res" / "01_biggest_model" / "speed.jsonl") == Path("res/01_biggest_model/speed.jsonl")
    assert machine.shown(tmp_path / "t.jsonl") == tmp_path / "t.jsonl"  # outside: as it is


@pytest.mark.slow
def test_prompt_engineering_measures_what_another_checkout_recorded(tmp_path):
    """The rows a clone receives were measured elsewhere: a fresh checkout's run computes every
    strategy again instead of copying those rows' answers (as it once did for an ensemble's
    parts, which reused any recorded row of the same machine label)."""
    small = {**SMALL["prompt_engineering"], "strategies": ["direct"], "text_cut_tokens": [],
             "results_dir": str(tmp_path)}
    notebooks.execute(ITERATION / "make_validation_set.ipynb", tmp_path / "v.ipynb", cwd=REPO,
                      parameters={**SMALL["make_validation_set"], "results_dir": str(tmp_path)},
                      progress_bar=False)
    table = tmp_path / "prompt_engineering.jsonl"
    elsewhere = dict(checkout="0therc10", prediction="BOGUS ANSWER FROM ANOTHER CHECKOUT")
    # a real first run, whose rows are then re-labelled as another checkout's
    notebooks.execute(ITERATION / "prompt_engineering.ipynb", tmp_path / "p1.ipynb", cwd=REPO,
                      parameters=small, progress_bar=False)
    first = results.read(table)
    table.write_text("".join(json.dumps({**r, **elsewhere}) + "\n" for r in first.to_dict("records")))
    notebooks.execute(ITERATION / "prompt_engineering.ipynb", tmp_path / "p2.ipynb", cwd=REPO,
                      parameters={**small, "strategies": ["direct", "few_shot_direct_mean"]},
                      progress_bar=False)
    mine = results.read(table)
    mine = mine[mine["checkout"].eq(machine.checkout_id())]
    assert set(mine["strategy"]) == {"direct", "few_shot_direct_mean"}
    assert not mine["prediction"].str.contains("BOGUS").any()
