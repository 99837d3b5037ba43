"""Each notebook is paired (.py and .ipynb agree) and runs under papermill with small parameters."""
import jupytext
import pandas as pd
import papermill
import pytest

from shared import results
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
}
NEEDS = {"prompt_engineering": "make_validation_set"}  # runs first, into the same folder


def test_every_notebook_has_small_parameters_here():
    assert set(NOTEBOOKS) <= set(SMALL), "add the new notebook's smallest parameters to SMALL"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_py_and_ipynb_are_in_sync(name):
    py = jupytext.read(ITERATION / f"{name}.py")
    ipynb = jupytext.read(ITERATION / f"{name}.ipynb")
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in ipynb.cells], \
        f"run `make sync` (jupytext --sync) for {name}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell(name):
    nb = jupytext.read(ITERATION / f"{name}.py")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "results_dir" in tagged[0].source


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_papermill(name, tmp_path):
    for step in ([NEEDS[name]] if name in NEEDS else []) + [name]:
        papermill.execute_notebook(ITERATION / f"{step}.ipynb", tmp_path / f"{step}.ipynb", cwd=REPO,
                                   parameters={**SMALL[step], "results_dir": str(tmp_path)},
                                   progress_bar=False)
    tables = list(tmp_path.glob("*.jsonl"))
    assert tables, "the notebook recorded no results"
    for table in tables:
        df = results.read(table)
        if "status" in df:
            assert (df["status"] == "ok").all(), df.get("error")
        assert df.get("error", pd.Series(dtype=object)).isna().all()
    if name != "make_validation_set":
        assert list(tmp_path.glob("*.png")), "the notebook saved no figure"
