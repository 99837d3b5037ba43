"""A measurement's identity: every parameter that changes it, and only the notebook's parameters.

The report's own example, `papermill speed.ipynb ... -p max_new_tokens 64` after a run, once
measured nothing ("already measured": the configuration was model, backend and quantization
only), and a parameter the notebook does not have (a typo in params/*.yaml) passed with a
papermill warning, so the notebook measured its default.
"""
import re
import shutil

import pandas as pd
import pytest
import yaml

from shared import results
from shared.run import experiment, notebooks, runbook
from shared.task import validation
from shared.errors import LabError
from shared.machine import REPO

ITERATION = REPO / "iterations" / "01_biggest_model"


def counting(calls):
    def measure(config):
        calls.append(config)
        yield {"value": 1}
    return measure


def test_settings_are_part_of_what_counts_as_already_measured(tmp_path):
    table, calls = tmp_path / "t.jsonl", []
    configs = [{"model": "m", "backend": "b"}]
    for tokens in (16, 16, 64, 16):
        experiment.run(configs, counting(calls), table, isolate=False,
                       settings={"max_new_tokens": tokens, "repetitions": 2})
    assert len(calls) == 2  # 16, then 64; the second 16 and the last were done
    rows = results.read(table)
    assert rows["settings_hash"].nunique() == 2
    assert set(rows["settings_hash"]) == {results.settings_hash({"max_new_tokens": t, "repetitions": 2})
                                          for t in (16, 64)}


def test_a_set_made_with_another_cap_is_not_reused_silently(tmp_path):
    rows = pd.DataFrame({"max_new_tokens": [80, 80], "seed": [0, 0]})
    assert validation.made_otherwise(rows, tmp_path / "v.jsonl", max_new_tokens=80, seed=0) is None
    note = validation.made_otherwise(rows, tmp_path / "v.jsonl", max_new_tokens=24, seed=0)
    assert re.search(r"made with max_new_tokens 80, not max_new_tokens 24: reused.*set_name.*redo", note)


@pytest.mark.slow
def test_the_reports_max_new_tokens_64_example_measures_after_a_run(tmp_path):
    small = dict(models=["smollm2-135m-instruct"], backends=["llama_cpp"], quantizations=["none"],
                 input_tokens=16, max_new_tokens=3, repetitions=1, results_dir=str(tmp_path))
    table = tmp_path / "speed.jsonl"
    notebooks.execute(ITERATION / "speed.ipynb", tmp_path / "1.ipynb", cwd=REPO, parameters=small,
                      progress_bar=False)
    first = len(results.read(table))
    notebooks.execute(ITERATION / "speed.ipynb", tmp_path / "2.ipynb", cwd=REPO,
                      parameters={**small, "max_new_tokens": 64}, progress_bar=False)
    rows = results.read(table)
    new = rows.iloc[first:]
    assert len(new) == first and set(new["max_new_tokens"]) == {64} and (new["status"] == "ok").all()
    notebooks.execute(ITERATION / "speed.ipynb", tmp_path / "3.ipynb", cwd=REPO,
                      parameters={**small, "max_new_tokens": 64}, progress_bar=False)
    assert len(results.read(table)) == len(rows)  # the same parameters again: already measured


def test_an_unknown_parameter_stops_before_the_kernel_starts(tmp_path):
    with pytest.raises(LabError, match=r"speed: unknown parameter 'max_new_token'.*max_new_tokens.*repetitions"):
        notebooks.execute(ITERATION / "speed.ipynb", tmp_path / "out.ipynb", cwd=REPO,
                          parameters={"max_new_token": 8, "results_dir": str(tmp_path)})
    assert not (tmp_path / "out.ipynb").exists() and not (tmp_path / "speed.jsonl").exists()


def test_an_unknown_key_in_a_params_file_stops_the_job_before_any_notebook(tmp_path):
    it = tmp_path / "01_copy"
    (it / "params").mkdir(parents=True)
    for name in ("speed", "eos"):
        for suffix in (".py", ".ipynb"):
            shutil.copy2(ITERATION / f"{name}{suffix}", it / f"{name}{suffix}")
    (it / "params" / "typo.yaml").write_text(yaml.safe_dump({
        "notebooks": ["speed", "eos"], "speed": {"results_dir": str(tmp_path)},
        "eos": {"max_new_token": 8, "results_dir": str(tmp_path)}}))
    with pytest.raises(SystemExit, match=r"eos: unknown parameter 'max_new_token' in params/typo.yaml, "
                                         r"section 'eos'.*Its parameters are: models, backends"):
        runbook.run(it, "typo")
    assert not (it / "executed").exists() and not list(tmp_path.glob("*.jsonl"))  # speed never ran
