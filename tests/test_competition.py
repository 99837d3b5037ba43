"""The competition's budget lives once (shared/data/kaggle.yaml): submit.py, every notebook and
every params file take it from there; the held-out tables print their counts as integers."""
import ast
import re

import nbformat
import pandas as pd
import pytest
import yaml

from shared.task import competition, submit
from shared.errors import LabError
from shared.machine import REPO

ITERATION = REPO / "iterations" / "01_biggest_model"
KAGGLE = yaml.safe_load(competition.KAGGLE_FILE.read_text())


def _parameters(name: str) -> dict:
    nb = nbformat.read(ITERATION / f"{name}.ipynb", as_version=4)
    source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(source, values)
    return values


def test_the_facts_are_read_from_kaggle_yaml_with_the_budget_a_sample_they_imply():
    f = competition.facts()
    assert (f.budget_hours, f.samples, f.margin_hours) == (KAGGLE["budget_hours"], KAGGLE["samples"],
                                                          KAGGLE["margin_hours"])
    assert f.deadline_hours == pytest.approx(KAGGLE["budget_hours"] - KAGGLE["margin_hours"])
    assert f.budget_s_per_sample == pytest.approx(KAGGLE["budget_hours"] * 3600 / KAGGLE["samples"])
    # the report's "24.9 s a sample" is what these facts give, to its one decimal
    assert f"{f.budget_s_per_sample:.1f}" == "24.9"
    text = competition.KAGGLE_FILE.read_text()
    assert "code-requirements" in text and "1300+" in text and "NOT a published figure" in text


def test_submit_takes_its_defaults_from_the_facts():
    f = competition.facts()
    assert (submit.SAMPLES, submit.BUDGET_HOURS, submit.MARGIN_HOURS, submit.DEADLINE_HOURS) == \
        (f.samples, f.budget_hours, f.margin_hours, f.deadline_hours)
    assert submit.projection(f.budget_s_per_sample)["fits"]
    assert not submit.projection(f.budget_s_per_sample * 1.01)["fits"]


def test_zero_means_the_competition_and_a_value_overrides_it():
    f = competition.facts()
    assert competition.budget(0, 0) == (f.budget_hours, f.samples)
    assert competition.budget(None, None) == (f.budget_hours, f.samples)
    assert competition.budget(2.5, 100) == (2.5, 100)


@pytest.mark.parametrize("content, match", [
    ("budget_hours: 9\nsamples: 1300\n", "missing"),
    ("budget_hours: 9\nsamples: many\nmargin_hours: 0.5\n", "must be numbers"),
    ("budget_hours: 0.5\nsamples: 1300\nmargin_hours: 0.5\n", "margin_hours < budget_hours"),
    ("budget_hours: 9\nsamples: 0\nmargin_hours: 0.5\n", "samples >= 1"),
])
def test_a_broken_facts_file_is_named_with_what_is_wrong(tmp_path, content, match):
    path = tmp_path / "kaggle.yaml"
    path.write_text(content)
    with pytest.raises(LabError, match=match) as e:
        competition.facts(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("name, keys", [("speed", ("budget_hours", "samples")),
                                        ("roofline", ("budget_hours", "samples")),
                                        ("submission", ("budget_hours", "expected_rows"))])
def test_every_notebook_defaults_its_budget_to_the_facts_file(name, keys):
    values = _parameters(name)
    for key in keys:
        assert values[key] == 0, f"{name}.{key} must default to 0 (from shared/data/kaggle.yaml)"


def test_no_params_file_and_no_code_types_the_budget_again():
    """The numbers of kaggle.yaml appear nowhere else in code or params (README prose aside)."""
    for path in (ITERATION / "params").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        for section in config.values():
            if isinstance(section, dict):
                assert not {"budget_hours", "samples"} & set(section), path.name
    samples = re.compile(rf"(?<![\d.]){KAGGLE['samples']}(?![\d.])")
    hours = re.compile(rf"(?<![\d.]){KAGGLE['budget_hours']}(?![\d])|(?<![\d.]){KAGGLE['budget_hours'] - KAGGLE['margin_hours']}(?![\d])")
    files = [*(REPO / "shared").glob("*.py"), *ITERATION.glob("*.py"), *(ITERATION / "params").glob("*.yaml")]
    for path in files:
        code = path.read_text()
        assert not samples.search(code), f"{path.name} types the hidden set's size"
        if path.suffix == ".py":  # only numbers in code; a 9.0 in a comment would be prose
            tree = ast.parse(code)
            numbers = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                       and isinstance(n.value, float)}
            assert KAGGLE["budget_hours"] not in numbers, f"{path.name} types the budget"
        else:
            assert not hours.search(code), path.name


def test_held_out_counts_print_as_integers(monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location("report_blocks", ITERATION / "report_blocks.py")
    blocks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blocks)
    loo = pd.DataFrame([{"rows": "published", "configs": 66.0, "decode_tok_s_median_err_pct": 6.1}])
    held = pd.DataFrame([{"held out": "one card out", "family": "bitsandbytes", "configs": 9.0, "predicted": 9.0,
                          "median_err_pct": 80.7, "worst_err_pct": 525.1},
                         {"held out": "one source out", "family": "bitsandbytes", "configs": 9.0, "predicted": 0.0,
                          "median_err_pct": None, "worst_err_pct": None}])
    cols = pd.DataFrame([{"family": "llama.cpp", "hardware": "T4", "configs": 1.0, "held_out_err_pct": 11.4,
                          "worst_err_pct": 11.4, "scope": "turing"},
                         {"family": "transformers", "hardware": "P4", "configs": 0.0, "held_out_err_pct": None,
                          "worst_err_pct": None, "scope": "no rows"}])
    tables = {"loo_summary": loo, "held_out": held, "column_error": cols}
    monkeypatch.setattr(blocks, "_roofline_rows", lambda table: tables[table])
    monkeypatch.setattr(blocks, "_roofline_source", lambda: "")
    text = blocks.roofline_accuracy()
    assert "9.0" not in text and "66.0" not in text and "1.0 " not in text
    assert re.search(r"\|\s+9 \|\s+9 \|\s+80\.7 \|", text)       # counts whole, errors with their decimal
    assert re.search(r"\|\s+9 \|\s+0 \|", text)
    assert re.search(r"\| T4\s+\|\s+1 \|\s+11\.4 \|", text)
