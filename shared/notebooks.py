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
"""
from __future__ import annotations

from pathlib import Path

from .catalog import LabError


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


def execute(ipynb: str | Path, output: str | Path, **kwargs):
    """papermill.execute_notebook(ipynb, output, **kwargs) after `check([ipynb])`; the paths
    papermill records in the executed notebook's metadata are made repository-relative (also
    when a cell failed), so a committed notebook does not carry the absolute paths of the
    machine that ran it."""
    import papermill

    check([ipynb])
    try:
        return papermill.execute_notebook(ipynb, output, **kwargs)
    finally:
        _relative_paths(Path(output))


def _relative_paths(output: Path) -> None:
    import nbformat

    from .machine import shown

    if not output.exists():
        return
    nb = nbformat.read(output, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = str(shown(Path(meta[key])))
    nbformat.write(nb, output)
