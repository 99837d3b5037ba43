"""One-item list parameters from the papermill command line (issue 11; once in
tests/test_faults.py).
"""
import re
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from shared import results
from shared.run import params
from shared.errors import LabError
from shared.machine import REPO


# ---- 4. one-item list parameters from the papermill command line ----------------------------

@pytest.mark.parametrize("value,expected", [
    ("smollm2-135m-instruct", ["smollm2-135m-instruct"]), (["a", "b"], ["a", "b"]), (("a",), ["a"]),
    (64, [64]), (0.5, [0.5]), ([], []), ("Rewrite this, please: hey, u there?", ["Rewrite this, please: hey, u there?"]),
])
def test_a_single_value_is_a_one_item_list(value, expected):
    assert params.as_list("models", value) == expected


@pytest.mark.parametrize("value,match", [
    ("[smollm2-135m-instruct, gemma-3-270m]", "-y 'models: [smollm2-135m-instruct, gemma-3-270m]'"),
    ("a]", "-y 'models: [a]'"), ("", "empty string"), ("  ", "empty string"),
    (None, "-y 'models: [...]'"), (True, "got bool"), ({"a": 1}, "got dict"),
])
def test_what_cannot_be_a_list_names_the_parameter_and_the_y_form(value, match):
    with pytest.raises(LabError, match=re.escape(match)) as e:
        params.as_list("models", value)
    assert "'models'" in str(e.value)


def test_as_lists_rewrites_the_notebooks_globals():
    ns = {"models": "gemma-3-270m", "input_lengths": 64, "backends": ["llama_cpp"]}
    params.as_lists(ns, "models", "input_lengths", "backends")
    assert ns == {"models": ["gemma-3-270m"], "input_lengths": [64], "backends": ["llama_cpp"]}
    with pytest.raises(LabError, match="no parameter named 'modles'"):
        params.as_lists(ns, "modles")


NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


def test_as_lists_reads_the_values_of_a_mapping():
    ns = {"quantizations_by_model": {"gemma-3-270m": "4bit", "qwen": [], "smol": ["none", "8bit"]}}
    params.as_lists(ns, mappings=["quantizations_by_model"])
    assert ns["quantizations_by_model"] == {"gemma-3-270m": ["4bit"], "qwen": [], "smol": ["none", "8bit"]}
    with pytest.raises(LabError, match="must be a mapping"):
        params.as_lists({"q": "4bit"}, mappings=["q"])
    with pytest.raises(LabError, match=re.escape("parameter \"q['a']\"")):
        params.as_lists({"q": {"a": "[4bit]"}}, mappings=["q"])


def _coerced(source: str) -> tuple[list, list]:
    """The names an as_lists(...) call in `source` coerces: (lists, mappings)."""
    import ast
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "as_lists":
            mappings = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "mappings"), [])
            return [ast.literal_eval(a) for a in node.args[1:]], list(mappings)
    return [], []


def _bools(source: str) -> list:
    """The names an as_bools(...) call in `source` reads as yes or no."""
    import ast
    return [ast.literal_eval(a) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "as_bools" for a in node.args[1:]]


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_every_list_parameter_is_coerced_after_the_parameters_cell(name):
    """Every list (and dict-of-lists) parameter of every notebook, in the cell right after; and
    every yes/no parameter (issue 24.3: -p redo false is the text "false")."""
    import jupytext
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    ns = {}
    exec(nb.cells[i].source, ns)
    lists, mappings = _coerced(nb.cells[i + 1].source)
    assert sorted(lists) == sorted(k for k, v in ns.items() if isinstance(v, list))
    assert sorted(mappings) == sorted(k for k, v in ns.items() if isinstance(v, dict) and k != "__builtins__")
    assert sorted(_bools(nb.cells[i + 1].source)) == sorted(k for k, v in ns.items() if isinstance(v, bool))


@pytest.mark.slow
def test_speed_notebook_from_the_command_line_with_one_model(tmp_path):
    """The reported command: -p models NAME (and one backend, one quantization) runs NAME."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "papermill"), str(NOTEBOOKS / "speed.ipynb"), str(tmp_path / "out.ipynb"),
         "--cwd", str(REPO), "-p", "models", "smollm2-135m-instruct", "-p", "backends", "llama_cpp",
         "-p", "quantizations", "none", "-p", "input_tokens", "16", "-p", "max_new_tokens", "3",
         "-p", "repetitions", "1", "-p", "results_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    df = results.read(tmp_path / "speed.jsonl")
    assert set(df["model"]) == {"smollm2-135m-instruct"} and set(df["backend"]) == {"llama_cpp"}
    assert (df["status"] == "ok").all()


@pytest.mark.slow
def test_single_values_in_the_eos_and_length_notebooks(tmp_path):
    common = dict(models="smollm2-135m-instruct", backends="llama_cpp", results_dir=str(tmp_path))
    papermill.execute_notebook(NOTEBOOKS / "eos.ipynb", tmp_path / "eos.ipynb", cwd=REPO, progress_bar=False,
                               parameters={**common, "questions": "Say hi, please.", "max_new_tokens": 4})
    eos = results.read(tmp_path / "eos.jsonl")
    assert set(eos["question"]) == {0} and len(eos) == 2  # one question, not one per letter
    papermill.execute_notebook(NOTEBOOKS / "length_scaling.ipynb", tmp_path / "ls.ipynb", cwd=REPO,
                               progress_bar=False,
                               parameters={**common, "input_lengths": 8, "output_lengths": 2, "batch_sizes": 1,
                                           "fixed_input_tokens": 8, "fixed_output_tokens": 2, "repetitions": 1})
    ls = results.read(tmp_path / "length_scaling.jsonl")
    timed = ls[ls["phase"] == "timed"]
    assert sorted(timed["sweep"]) == ["batch", "input", "output"]


@pytest.mark.slow
def test_a_list_written_as_text_stops_the_notebook_with_the_y_form(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as e:
        papermill.execute_notebook(NOTEBOOKS / "speed.ipynb", tmp_path / "out.ipynb", cwd=REPO,
                                   progress_bar=False,
                                   parameters={"models": "[smollm2-135m-instruct, gemma-3-270m]",
                                               "results_dir": str(tmp_path)})
    assert "-y 'models: [smollm2-135m-instruct, gemma-3-270m]'" in str(e.value)
    assert not (tmp_path / "speed.jsonl").exists()
