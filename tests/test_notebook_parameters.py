"""papermill sees every parameter of every notebook (issue 17; once in tests/test_fault_kinds.py)."""

import pytest


# --- 17.10 papermill sees every parameter of every notebook ---------------------------------------

from shared.machine import REPO  # noqa: E402

NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


def _parameters_cell(name: str) -> str:
    import nbformat
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_papermill_infers_every_parameter_with_its_value(name):
    """papermill 2.7 skips a line it cannot parse (a comment with a second '='), so -p NAME is
    then 'unknown' and --help-notebook leaves NAME out: its own inference must see each one."""
    import ast

    import papermill
    source = _parameters_cell(name)
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                for t in node.targets]
    inferred = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    assert sorted(inferred) == sorted(assigned)
    values = {}
    exec(source, values)
    for key, p in inferred.items():
        assert ast.literal_eval(p["default"]) == values[key], key


@pytest.mark.parametrize("params", sorted(p.name for p in (NOTEBOOKS / "params").glob("*.yaml")))
def test_every_parameter_a_parameter_set_passes_is_known_to_papermill(params):
    import papermill

    from shared.run import runbook
    config = runbook.load_params(NOTEBOOKS, params.removesuffix(".yaml"))  # same_as sections resolved
    for name in config["notebooks"]:
        known = set(papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")))
        assert set(config.get(name) or {}) <= known, name


def test_a_comment_with_a_second_equals_sign_is_what_papermill_skips(tmp_path):
    """The reason for the test above, checked on papermill itself (when it changes, so may this)."""
    import nbformat
    import papermill
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                          "display_name": "Python 3"}})
    nb.cells.append(nbformat.v4.new_code_cell("a = {}  # x: y; [] = z\nb = 1  # x: y; []: z",
                                              metadata={"tags": ["parameters"]}))
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert sorted(papermill.inspect_notebook(str(tmp_path / "nb.ipynb"))) == ["b"]
