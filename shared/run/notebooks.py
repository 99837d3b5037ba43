"""Executing a paired notebook: its .ipynb runs only when it says what its .py says.

Every notebook of an iteration is a jupytext pair (jupytext.toml): the `.py` is what git diffs
and what an editor changes, the `.ipynb` is what papermill executes. After an edit of one side
the other is stale until `make sync` (`jupytext --sync`), and papermill would run the old cells
without a word (jupytext/jupytext#551 is this kind). `execute` therefore compares the pair's
cells (type, source, tags, so a lost `parameters` tag counts) and refuses to run an unsynced
pair; `check` does the same for a whole list before the first one runs.

Why stop rather than sync here: `jupytext --sync` takes the newer file as the source, and the
times of a git checkout or a copy say nothing about which side was edited, so a sync made on
our own could overwrite the edit with the stale cells; and a main job that rewrites source
files leaves a diff nobody asked for. The message names the newer file, so the user can see
what `make sync` will keep before running it.

Parameters: papermill only warns about a parameter the notebook's `parameters` cell does not
set, and the notebook then measures its default (a typo in params/*.yaml or `-p`).
`check_parameters` refuses such names, listing the notebook's parameters; `execute` calls it
before the kernel starts and the main job (shared.run.runbook) for every notebook before the first.
"""
from __future__ import annotations

from pathlib import Path

from shared.errors import LabError


def _cells(path: Path) -> list[tuple]:
    import jupytext  # not at the top: importing shared stays cheap

    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def unsynced(ipynb: str | Path) -> str | None:
    """Why the notebook `ipynb` must not run as it is, or None when it may.

    A notebook with a `.py` next to it is a pair: both must exist and hold the same cells.
    A notebook without a `.py` (one made by hand or by a test) is not a pair and may run.
    """
    ipynb = Path(ipynb)
    py = ipynb.with_suffix(".py")
    if not ipynb.exists():
        if py.exists():
            return f"{ipynb.name} does not exist but {py.name} does: run `make sync` to make it"
        return f"{ipynb} does not exist"
    if not py.exists():
        return None
    try:
        text_cells, notebook_cells = _cells(py), _cells(ipynb)
    except Exception as e:  # unreadable JSON or text: the same remedy after fixing the file
        return f"{ipynb.name} and {py.name} cannot both be read ({type(e).__name__}: {e})"
    if text_cells == notebook_cells:
        return None
    differ = [i + 1 for i, (a, b) in enumerate(zip(text_cells, notebook_cells)) if a != b]
    where = (f"cell {differ[0]} differs" if differ
             else f"{py.name} has {len(text_cells)} cells, {ipynb.name} {len(notebook_cells)}")
    newer = py if py.stat().st_mtime >= ipynb.stat().st_mtime else ipynb
    return (f"{ipynb.name} and {py.name} are not in sync ({where}; {newer.name} is newer, "
            f"`make sync` takes its cells)")


def check(paths: list[str | Path]) -> None:
    """LabError listing every notebook of `paths` that is not in sync with its .py; nothing runs
    before all of them are."""
    problems = [p for p in (unsynced(path) for path in paths) if p]
    if problems:
        raise LabError("stale notebooks, nothing was run: run make sync (jupytext --sync), "
                       "then run again\n  " + "\n  ".join(problems))


def defaults(ipynb: str | Path) -> dict:
    """The notebook's parameters cell as {name: value} (papermill's reading; a default that is
    not a Python literal is left out). LabError when the notebook cannot be read."""
    import ast

    import papermill

    out = {}
    for name, p in papermill.inspect_notebook(str(ipynb)).items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            pass
    return out


def parameter_names(ipynb: str | Path) -> list[str]:
    """The names the notebook's `parameters` cell sets, in its order (papermill's reading)."""
    import papermill

    return list(papermill.inspect_notebook(str(ipynb)))


def check_parameters(ipynb: str | Path, parameters, where: str = "") -> None:
    """LabError naming the unknown names of `parameters` (a mapping or names) and the notebook's
    own parameters, when `parameters` holds a name its parameters cell does not set; `where`
    says where they came from (e.g. "params/cpu.yaml, section 'speed'")."""
    known = parameter_names(ipynb)
    unknown = [name for name in parameters if name not in known]
    if unknown:
        raise LabError(f"{Path(ipynb).stem}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(map(repr, unknown))}{' in ' + where if where else ''}; nothing was run. "
                       f"Its parameters are: {', '.join(known)}")


def execute(ipynb: str | Path, output: str | Path, **kwargs):
    """papermill.execute_notebook(ipynb, output, **kwargs) after `check([ipynb])`; the paths
    papermill records in the executed notebook's metadata are made repository-relative (also
    when a cell failed), so a committed notebook does not carry the absolute paths of the
    machine that ran it. LabError before the kernel starts for an unknown parameter name
    (check_parameters) or an unsynced pair (check)."""
    import papermill

    check([ipynb])
    check_parameters(ipynb, kwargs.get("parameters") or {})
    try:
        return papermill.execute_notebook(ipynb, output, **kwargs)
    finally:
        _relative_paths(Path(output))


def _relative_paths(output: Path) -> None:
    import nbformat

    from shared.machine import shown

    if not output.exists():
        return
    nb = nbformat.read(output, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = str(shown(Path(meta[key])))
    nbformat.write(nb, output)
