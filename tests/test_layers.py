"""The import direction of shared/, read from the source with `ast` (nothing is imported).

Each module belongs to one wing (issue 22): the ground (errors, machine, results) imports
nothing above it; models/ only the ground; speed/, task/ and report/ the ground and models/,
never each other; run/ may import everything; nothing in shared/ imports an iteration's code.
The wings are still flat modules here: WINGS names each module's wing, and a new module must be
placed in it. KNOWN are the climbs that remain until the move; any other climb fails, and a
known one that is gone must leave KNOWN.
"""
import ast
import shutil
from pathlib import Path

from shared.machine import REPO

WINGS = {
    "ground": "errors machine results",
    "models": "catalog loading model hf llamacpp vllm_engine tokens timing envs",
    "speed": "roofline calibration fastenough modelfiles peaks",
    "task": "competition dataio metrics prompts mean_prompt validation submit shards",
    "report": "report reproduction plots analysis",
    "run": "params experiment lifetime notebooks preflight runbook gpuplan",
}
MAY_IMPORT = {"ground": {"ground"}, "models": {"ground", "models"},
              "speed": {"ground", "models", "speed"}, "task": {"ground", "models", "task"},
              "report": {"ground", "models", "report"}, "run": set(WINGS)}
KNOWN = {("calibration", "analysis"),   # analysis.ok_timed: a row-picking helper for results.py
         ("fastenough", "plots"),       # Iteration 1's answer figure, to move beside its notebooks
         ("report", "competition")}     # the budget a report block states


def wing_of() -> dict[str, str]:
    return {m: w for w, names in WINGS.items() for m in names.split()}


def imports(path: Path) -> set[str]:
    """The lab modules `path` imports anywhere in it (top level or inside a function), and
    "iterations" for an import of an iteration's code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ("shared", "iterations"):
                found.add(node.module.split(".")[1] if node.module.startswith("shared.") else "iterations")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "iterations":
                    found.add("iterations")
                elif alias.name.startswith("shared."):
                    found.add(alias.name.split(".")[1])
    return found


def climbs(package: Path) -> list[tuple[str, str]]:
    """(module, what it imports) for each import against the direction; an unplaced module is
    (module, "no wing")."""
    wing = wing_of()
    out = []
    for path in sorted(package.glob("*.py")):
        name = path.stem
        if name == "__init__":
            continue
        if name not in wing:
            out.append((name, "no wing"))
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
        f.write("\n\ndef _planted():\n    from . import runbook\n    return runbook\n")
    with open(package / "tokens.py", "a") as f:      # models/ reaching into an iteration
        f.write("\nfrom iterations import report_blocks  # noqa\n")
    (package / "newthing.py").write_text('"""a module no wing holds"""\n')
    assert set(climbs(package)) - KNOWN == {("errors", "runbook"), ("tokens", "iterations"),
                                            ("newthing", "no wing")}
