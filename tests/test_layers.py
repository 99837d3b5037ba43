"""The import direction of shared/, read from the source with `ast` (nothing is imported).

Each module belongs to one wing (issue 22): the ground (errors, machine, results) imports
nothing above it; models/ only the ground; speed/, task/ and report/ the ground and models/,
never each other; run/ may import everything; nothing in shared/ imports an iteration's code.
A module's wing is its folder (shared/models/, shared/speed/, ...); the ground modules sit at the
top; a new module must be placed in a wing. KNOWN are the climbs that remain; any other climb
fails, and a known one that is gone must leave KNOWN.
"""
import ast
import shutil
from pathlib import Path

from shared.machine import REPO

GROUND = {"errors", "machine", "results"}
WINGS = ("models", "speed", "task", "report", "run")
MAY_IMPORT = {"ground": {"ground"}, "models": {"ground", "models"},
              "speed": {"ground", "models", "speed"}, "task": {"ground", "models", "task"},
              "report": {"ground", "models", "report"}, "run": {"ground", *WINGS}}
KNOWN: set[tuple[str, str]] = set()   # climbs left to remove; none since the move (issue 22)


def wing_of(package: Path) -> dict[str, str]:
    """Module name -> its wing: the folder it is in, "ground" for the ground modules at the top,
    "entry" for __main__ (the command line, which dispatches to run/ and the others), "no wing"
    for any other top-level module."""
    out = {}
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).parts
        if path.stem == "__init__" or "__pycache__" in rel:
            continue
        if len(rel) == 1:
            out[path.stem] = ("ground" if path.stem in GROUND else
                              "entry" if path.stem == "__main__" else "no wing")
        else:
            out[path.stem] = rel[0] if rel[0] in WINGS else "no wing"
    return out


def imports(path: Path) -> set[str]:
    """The lab modules `path` imports anywhere in it (top level or inside a function), as module
    names (a wing imported whole counts as each of its modules named), and "iterations" for an
    import of an iteration's code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "iterations":
                found.add("iterations")
            elif parts[0] == "shared":
                whole = len(parts) == 1 or (len(parts) == 2 and parts[1] in WINGS)   # shared / a wing
                found |= {a.name for a in node.names} if whole else {parts[-1]}
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found |= {node.module.split(".")[-1]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "iterations":
                    found.add("iterations")
                elif parts[0] == "shared" and len(parts) > 1:
                    found.add(parts[-1])
    return found


def climbs(package: Path) -> list[tuple[str, str]]:
    """(module, what it imports) for each import against the direction; a module outside the
    wings is (module, "no wing")."""
    wing = wing_of(package)
    out = []
    for path in sorted(package.rglob("*.py")):
        name = path.stem
        if name == "__init__" or "__pycache__" in path.parts:
            continue
        if wing[name] == "no wing":
            out.append((name, "no wing"))
            continue
        if wing[name] == "entry":
            continue
        for target in sorted(imports(path)):
            if target == "iterations" or (target in wing and wing[target] not in MAY_IMPORT[wing[name]]):
                out.append((name, target))
    return out


def test_shared_imports_only_downwards():
    found = set(climbs(REPO / "shared"))
    assert found - KNOWN == set(), "an import against the direction (or a module without a wing)"
    assert KNOWN - found == set(), "a known climb is gone: take it out of KNOWN"


def test_a_planted_climb_is_found(tmp_path):
    package = tmp_path / "shared"
    shutil.copytree(REPO / "shared", package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert set(climbs(package)) == KNOWN
    with open(package / "errors.py", "a") as f:      # the ground reaching up into run/
        f.write("\n\ndef _planted():\n    from shared.run import runbook\n    return runbook\n")
    with open(package / "models" / "tokens.py", "a") as f:      # models/ reaching into an iteration
        f.write("\nfrom iterations import report_blocks  # noqa\n")
    (package / "newthing.py").write_text('"""a module no wing holds"""\n')
    with open(package / "task" / "metrics.py", "a") as f:    # task/ reaching across into speed/
        f.write("\nfrom shared.speed import roofline  # noqa\n")
    assert set(climbs(package)) - KNOWN == {("errors", "runbook"), ("tokens", "iterations"),
                                            ("metrics", "roofline"), ("newthing", "no wing")}


def test_every_module_is_indexed_in_the_package_docstring_and_the_readme():
    """shared/__init__.py and the README's layout section name every module of shared/."""
    import shared
    index, readme = shared.__doc__, (REPO / "README.md").read_text()
    modules = {m for m in wing_of(REPO / "shared") if m != "__main__"}
    assert modules, "no modules found"
    missing_index = {m for m in modules if f"  {m} " not in index}
    missing_readme = {m for m in modules if f"`{m}`" not in readme and f"{m}.py" not in readme}
    assert not missing_index, f"not in shared/__init__.py: {sorted(missing_index)}"
    assert not missing_readme, f"not in README.md's layout section: {sorted(missing_readme)}"
