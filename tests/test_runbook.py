"""The main job goes on past a failing notebook, refreshes the report and exits non-zero."""
import re
import shutil

import nbformat
import pytest
import yaml

from shared import results
from shared.run import notebooks, runbook
from shared.errors import LabError
from shared.machine import REPO

BLOCKS = '''
from pathlib import Path
from shared import results

TABLE = Path(__file__).parent / "rows.jsonl"
BLOCKS = {"rows": lambda: f"{len(results.read(TABLE))} row(s) recorded"}
'''


def notebook(path, parameters: str, body: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_a_failing_notebook_does_not_stop_the_next_and_the_job_exits_non_zero(tmp_path, capsys):
    it = tmp_path / "99_tiny"
    (it / "params").mkdir(parents=True)
    notebook(it / "breaks.ipynb", "x = 1", "raise ValueError(f'boom {x}')")
    notebook(it / "dies.ipynb", "", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")  # kernel dies
    notebook(it / "records.ipynb", "table = ''",
             "from shared import results\nresults.append(table, {'status': 'ok'})")
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump({
        "notebooks": ["breaks", "dies", "records"], "breaks": {"x": 2},
        "records": {"table": str(it / "rows.jsonl")}}))
    (it / "README.md").write_text("# Tiny\n\n<!-- BEGIN rows -->\nstale\n<!-- END rows -->\n")
    (it / "report_blocks.py").write_text(BLOCKS)

    assert runbook.main([str(it), "--params", "cpu"]) == 1

    out = capsys.readouterr().out
    assert "1 row(s) recorded" in (it / "README.md").read_text()  # the last notebook ran, report refreshed
    assert (it / "executed" / "cpu" / "records.ipynb").exists()
    summary = out[out.index("summary:"):]
    assert "2 ok, 2 failed (breaks, dies)" in summary
    lines = summary.splitlines()
    assert "failed" in lines[1] and lines[1].endswith("ValueError: boom 2")
    assert "failed" in lines[2] and lines[2].endswith("DeadKernelError: Kernel died")
    assert "records" in lines[3] and " ok " in lines[3]
    assert str(it / "executed") in out  # paths outside the repository are printed as they are


def pair(folder, name: str, body: str):
    """A jupytext pair name.py + name.ipynb with a parameters cell, as `make sync` leaves it."""
    import jupytext
    py = folder / f"{name}.py"
    py.write_text("# %% tags=[\"parameters\"]\ntable = ''\n\n# %%\n" + body + "\n")
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    jupytext.write(nb, folder / f"{name}.ipynb")


def tiny_pairs(tmp_path):
    it = tmp_path / "98_pairs"
    (it / "params").mkdir(parents=True)
    append = "from shared import results\nresults.append(table, {'status': 'ok', 'by': '%s'})"
    pair(it, "first", append % "first")
    pair(it, "second", append % "second")
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump({
        "notebooks": ["first", "second"], "first": {"table": str(it / "rows.jsonl")},
        "second": {"table": str(it / "rows.jsonl")}}))
    (it / "README.md").write_text("# Pairs\n")
    (it / "report_blocks.py").write_text("BLOCKS = {}\n")
    return it


def edit_py(it, name):
    py = it / f"{name}.py"
    py.write_text(py.read_text().replace("'by': '", "'by': 'edited "))


def edit_ipynb(it, name):
    nb = nbformat.read(it / f"{name}.ipynb", as_version=4)
    nb.cells[1].source += "\nprint('added in the lab')"
    nbformat.write(nb, it / f"{name}.ipynb")


def drop_parameters_tag(it, name):
    py = it / f"{name}.py"
    py.write_text(py.read_text().replace(' tags=["parameters"]', ""))


def add_cell(it, name):
    py = it / f"{name}.py"
    py.write_text(py.read_text() + "\n# %%\nprint('new cell')\n")


def remove_ipynb(it, name):
    (it / f"{name}.ipynb").unlink()


@pytest.mark.parametrize("stale", [edit_py, edit_ipynb, drop_parameters_tag, add_cell, remove_ipynb])
def test_an_unsynced_pair_stops_the_job_before_any_notebook_runs(tmp_path, stale):
    it = tiny_pairs(tmp_path)
    stale(it, "second")  # the second notebook is stale: the first must not run either
    with pytest.raises(SystemExit) as stop:
        runbook.main([str(it), "--params", "cpu"])
    message = str(stop.value)
    assert "run make sync" in message and "second" in message and "first" not in message
    assert not (it / "rows.jsonl").exists() and not (it / "executed").exists()
    with pytest.raises(LabError, match="make sync"):  # whatever executes it, not only the job
        notebooks.execute(it / "second.ipynb", tmp_path / "out.ipynb")


def test_a_synced_pair_runs(tmp_path):
    it = tiny_pairs(tmp_path)
    assert runbook.main([str(it), "--params", "cpu"]) == 0
    assert results.read(it / "rows.jsonl")["by"].tolist() == ["first", "second"]


def test_an_edited_copy_of_a_real_notebook_is_refused(tmp_path):
    """The issue's case: roofline.py edited in a copy of the iteration, the .ipynb left as it was."""
    it = tmp_path / "01_copy"
    shutil.copytree(REPO / "iterations" / "01_biggest_model", it, ignore=shutil.ignore_patterns("executed"))
    params = yaml.safe_load((it / "params" / "cpu.yaml").read_text())
    for name in ("speed", "roofline"):  # should the check ever let them run: not into the lab's rows
        params[name] = {**params.get(name, {}), "results_dir": str(tmp_path / "res")}
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump(params))
    py = it / "roofline.py"
    edited = re.sub(r"^threads = \d+ ", "threads = 7 ", py.read_text(), count=1, flags=re.M)
    assert edited != py.read_text()
    py.write_text(edited)
    with pytest.raises(SystemExit, match=r"roofline.ipynb and roofline.py are not in sync \(cell \d+ differs; "
                                         r"roofline.py is newer"):
        runbook.main([str(it), "--params", "cpu", "--only", "speed", "roofline"])
    assert not (it / "executed").exists()


def test_a_section_same_as_another_set_is_typed_once(tmp_path):
    """params/gpu.yaml's roofline section is cpu.yaml's (same_as: cpu): the GPUs, candidates and
    quantizations are typed once; keys beside same_as override; a missing section or a cycle is
    an error naming the files before anything runs."""
    real = runbook.load_params(REPO / "iterations" / "01_biggest_model", "gpu")["roofline"]
    cpu = yaml.safe_load((REPO / "iterations/01_biggest_model/params/cpu.yaml").read_text())["roofline"]
    assert real == cpu and "same_as" not in real and "mixtral-8x7b-instruct-v0.1" in real["candidates"]
    params = tmp_path / "params"
    params.mkdir()
    (params / "a.yaml").write_text("notebooks: [r]\nr: {hardware: [T4], n_ctx: 0}\n")
    (params / "b.yaml").write_text("notebooks: [r]\nr: {same_as: a, n_ctx: 512}\n")
    assert runbook.load_params(tmp_path, "b")["r"] == {"hardware": ["T4"], "n_ctx": 512}
    (params / "c.yaml").write_text("notebooks: [s]\ns: {same_as: a}\n")
    with pytest.raises(SystemExit, match="params/a.yaml has no 's' section"):
        runbook.load_params(tmp_path, "c")
    (params / "d.yaml").write_text("notebooks: [r]\nr: {same_as: e}\n")
    (params / "e.yaml").write_text("notebooks: [r]\nr: {same_as: d}\n")
    with pytest.raises(SystemExit, match="refers back to itself"):
        runbook.load_params(tmp_path, "d")
    (params / "f.yaml").write_text("notebooks: [r]\nr: {same_as: nope}\n")
    with pytest.raises(SystemExit, match=r"params/f.yaml, section 'r': same_as 'nope' is not a parameter set: choose one of"):
        runbook.load_params(tmp_path, "f")
    # a cycle is per section: g's r comes from h, h's s from g, and neither section loops
    (params / "g.yaml").write_text("notebooks: [r, s]\nr: {same_as: h}\ns: {k: 1}\n")
    (params / "h.yaml").write_text("notebooks: [r, s]\nr: {same_as: a}\ns: {same_as: g}\n")
    assert runbook.load_params(tmp_path, "g") == {"notebooks": ["r", "s"], "r": {"hardware": ["T4"], "n_ctx": 0}, "s": {"k": 1}}
    assert runbook.load_params(tmp_path, "h")["s"] == {"k": 1}
    for text, message in [("notebooks: [r]\nr: 5\n", "section 'r' must be a mapping of parameters"),
                          ("notebooks: [r]\nr: [1, 2]\n", "section 'r' must be a mapping of parameters"),
                          ("", "must be a mapping"), ("- a\n- b\n", "must be a mapping"),
                          ("notebooks: [r]\nr: {same_as: }\n", "same_as must name one parameter set"),
                          ("notebooks: [r]\nr: {same_as: [a, b]}\n", "same_as must name one parameter set")]:
        (params / "bad.yaml").write_text(text)
        with pytest.raises(SystemExit, match=re.escape(message)):
            runbook.load_params(tmp_path, "bad")
    (params / "nodict.yaml").write_text("notebooks: [r]\nr: 5\n")
    (params / "i.yaml").write_text("notebooks: [r]\nr: {same_as: nodict}\n")
    with pytest.raises(SystemExit, match=re.escape("params/nodict.yaml, section 'r' must be a mapping")):
        runbook.load_params(tmp_path, "i")


def _second_iteration(tmp_path):
    """A copy of tiny_pairs in another folder, writing to its own table."""
    one = tiny_pairs(tmp_path)
    two = tmp_path / "99_second"
    shutil.copytree(one, two)
    params = yaml.safe_load((two / "params" / "cpu.yaml").read_text())
    for name in ("first", "second"):
        params[name]["table"] = str(two / "rows.jsonl")
    (two / "params" / "cpu.yaml").write_text(yaml.safe_dump(params))
    return one, two


def test_several_iterations_run_in_order_with_one_summary(tmp_path, capsys):
    """`make run` runs both iterations: each one's notebooks, then each one's report."""
    one, two = _second_iteration(tmp_path)
    assert runbook.main([str(one), str(two), "--params", "cpu"]) == 0
    assert results.read(one / "rows.jsonl")["by"].tolist() == ["first", "second"]
    assert results.read(two / "rows.jsonl")["by"].tolist() == ["first", "second"]
    out = capsys.readouterr().out
    assert "summary: 6 ok, 0 failed" in out and "99_second/second" in out


def test_a_typo_in_the_last_iteration_stops_the_job_before_the_first_runs(tmp_path):
    one, two = _second_iteration(tmp_path)
    params = yaml.safe_load((two / "params" / "cpu.yaml").read_text())
    params["second"]["tabel"] = "typo"
    (two / "params" / "cpu.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="tabel"):
        runbook.main([str(one), str(two), "--params", "cpu"])
    assert not (one / "rows.jsonl").exists() and not (one / "executed").exists()


def test_only_picks_notebooks_across_iterations_and_refuses_one_none_has(tmp_path):
    one, two = _second_iteration(tmp_path)
    with pytest.raises(SystemExit, match="no notebook \\['third'\\]"):
        runbook.main([str(one), str(two), "--params", "cpu", "--only", "second", "third"])
    assert not (one / "executed").exists()
    assert runbook.main([str(one), str(two), "--params", "cpu", "--only", "second"]) == 0
    assert results.read(two / "rows.jsonl")["by"].tolist() == ["second"]
