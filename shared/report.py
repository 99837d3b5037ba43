"""Generated blocks in an iteration report, refreshed from the results on disk.

The report (iterations/NN_name/README.md) is prose written by hand with marked blocks:

    <!-- BEGIN speed_table -->
    ...generated, do not edit...
    <!-- END speed_table -->

The iteration's `report_blocks.py` defines BLOCKS = {name: function() -> markdown}. `render`
rewrites each block from its function; `check` lists stale blocks and links to missing figures.

    python -m shared.report iterations/01_biggest_model            # refresh
    python -m shared.report iterations/01_biggest_model --check    # exit 1 if stale
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Callable

BLOCK = re.compile(r"(<!-- BEGIN (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END (?P=name) -->)", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def report_path(iteration: str | Path) -> Path:
    return Path(iteration) / "README.md"


def _module(iteration: str | Path):
    path = Path(iteration) / "report_blocks.py"
    spec = importlib.util.spec_from_file_location(f"report_blocks_{Path(iteration).name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocks(iteration: str | Path) -> dict[str, Callable[[], str]]:
    """The BLOCKS mapping of the iteration's report_blocks.py."""
    return _module(iteration).BLOCKS


def headlines(iteration: str | Path) -> list:
    """The HEADLINES list of the iteration's report_blocks.py (shared.reproduction.Headline
    items: what the main job compares with the earlier rows); empty when it has none."""
    return list(getattr(_module(iteration), "HEADLINES", []))


def _generate(iteration: Path) -> tuple[str, str, list[str]]:
    """(current text, regenerated text, names of blocks that changed)."""
    text = report_path(iteration).read_text()
    makers = blocks(iteration)
    changed = []

    def fill(m: re.Match) -> str:
        name = m["name"]
        if name not in makers:
            raise KeyError(f"{report_path(iteration)}: block {name!r} has no function in "
                           f"report_blocks.py (known: {', '.join(makers)})")
        body = makers[name]().strip() + "\n"
        if body != m["body"]:
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return text, BLOCK.sub(fill, text), changed


def render(iteration: str | Path) -> list[str]:
    """Rewrite every generated block from the results; returns the names that changed."""
    iteration = Path(iteration)
    _, new, changed = _generate(iteration)
    if changed:
        report_path(iteration).write_text(new)
    return changed


def missing_figures(iteration: str | Path) -> list[str]:
    report = report_path(iteration)
    links = IMAGE.findall(report.read_text())
    return [link for link in links if not link.startswith("http") and not (report.parent / link).exists()]


def check(iteration: str | Path) -> list[str]:
    """Problems with the report: blocks that differ from what the results produce, dead figures."""
    iteration = Path(iteration)
    _, _, changed = _generate(iteration)
    problems = [f"block {name!r} is stale: run `python -m shared.report {iteration}`" for name in changed]
    problems += [f"figure {link} is linked but missing" for link in missing_figures(iteration)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iteration", help="folder of the iteration, e.g. iterations/01_biggest_model")
    parser.add_argument("--check", action="store_true", help="report problems instead of rewriting")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.iteration)
        print("\n".join(problems) or "report is up to date")
        return 1 if problems else 0
    changed = render(args.iteration)
    print(f"refreshed {len(changed)} block(s): {', '.join(changed) or 'none changed'}")
    for link in missing_figures(args.iteration):
        print(f"warning: figure {link} is linked but missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
