"""Generated blocks in an iteration report, refreshed from the results on disk.

The report (iterations/NN_name/README.md) is prose written by hand with marked blocks:

    <!-- BEGIN speed_table -->
    ...generated, do not edit...
    <!-- END speed_table -->

The iteration's `report_blocks.py` defines BLOCKS = {name: function() -> markdown}. The same
blocks may also sit in appendix files beside the report (every other `*.md` of the iteration
folder, e.g. `appendix_fast_enough.md`, linked from the report), which keep the long generated
detail out of the report itself. `render` rewrites each block of the report and its appendices
from its function; `check` lists stale blocks, links to missing figures or files, appendices the
report does not link, and numbers typed in the prose (`typed_numbers`: a number outside the
generated blocks must be one that a generated block prints, or a parameter of the question).

    python -m shared report iterations/01_biggest_model            # refresh
    python -m shared report iterations/01_biggest_model --check    # exit 1 if stale
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


def appendix_paths(iteration: str | Path) -> list[Path]:
    """The appendix files of the report: every other `*.md` directly in the iteration folder
    (sorted by name). Their blocks are rendered and checked like the report's."""
    report = report_path(iteration)
    return sorted(p for p in Path(iteration).glob("*.md") if p.name != report.name)


def report_files(iteration: str | Path) -> list[Path]:
    """The report, then its appendices."""
    return [report_path(iteration), *appendix_paths(iteration)]


def iteration_module(iteration: str | Path, name: str):
    """The module `name`.py beside an iteration's notebooks (its report_blocks, Iteration 1's
    answer), loaded by path (an iteration folder like 01_biggest_model is no Python package) and
    kept in sys.modules, so that every caller gets the same module object. FileNotFoundError when
    the file is not there."""
    path = (Path(iteration) / f"{name}.py").resolve()
    key = f"iterations.{path.parent.name}.{name}"
    module = sys.modules.get(key)
    if module is not None and Path(module.__file__) == path:
        return module
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not there: an iteration keeps {name}.py beside its notebooks")
    spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module


def _module(iteration: str | Path):
    """The iteration's report_blocks, loaded afresh (a refresh sees edited block code)."""
    sys.modules.pop(f"iterations.{Path(iteration).resolve().name}.report_blocks", None)
    return iteration_module(iteration, "report_blocks")


def blocks(iteration: str | Path) -> dict[str, Callable[[], str]]:
    """The BLOCKS mapping of the iteration's report_blocks.py."""
    return _module(iteration).BLOCKS


def headlines(iteration: str | Path) -> list:
    """The HEADLINES list of the iteration's report_blocks.py (shared.report.reproduction.Headline
    items: what the main job compares with the earlier rows); empty when it has none."""
    return list(getattr(_module(iteration), "HEADLINES", []))


def _generate(iteration: Path) -> dict[Path, tuple[str, str, list[str]]]:
    """Per file of the report (README.md, then the appendices): (current text, regenerated
    text, names of its blocks that changed)."""
    makers = blocks(iteration)
    out = {}
    for path in report_files(iteration):
        text = path.read_text()
        changed = []

        def fill(m: re.Match, path=path, changed=changed) -> str:
            name = m["name"]
            if name not in makers:
                raise KeyError(f"{path}: block {name!r} has no function in "
                               f"report_blocks.py (known: {', '.join(makers)})")
            body = makers[name]().strip() + "\n"
            if body != m["body"]:
                changed.append(name)
            return m.group(1) + body + m.group(4)

        out[path] = (text, BLOCK.sub(fill, text), changed)
    return out


def render(iteration: str | Path) -> list[str]:
    """Rewrite every generated block of the report and its appendices from the results;
    returns the names that changed."""
    changed = []
    for path, (_, new, names) in _generate(Path(iteration)).items():
        if names:
            path.write_text(new)
        changed += names
    return changed


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s#]+\.md)(?:#[^)\s]*)?\)")


def missing_figures(iteration: str | Path) -> list[str]:
    """Figures linked from the report or an appendix that do not exist (relative links)."""
    out = []
    for path in report_files(iteration):
        links = IMAGE.findall(path.read_text())
        out += [link for link in links if not link.startswith("http") and not (path.parent / link).exists()]
    return out


def _problems_with_links(iteration: Path) -> list[str]:
    """Markdown files linked from the report that are missing, and appendices it does not link."""
    report = report_path(iteration)
    linked = {(report.parent / link).resolve() for link in LINK.findall(report.read_text())
              if not link.startswith("http")}
    problems = [f"{report.name} links {p.relative_to(report.parent.resolve())}, which is missing"
                for p in sorted(linked) if not p.exists() and p.is_relative_to(report.parent.resolve())]
    problems += [f"appendix {p.name} is not linked from {report.name}"
                 for p in appendix_paths(iteration) if p.resolve() not in linked]
    return problems


# Numbers in the prose (outside generated blocks): each must be one that a generated block of
# the same section prints, so a reader finds it in the table beside the sentence. Not counted
# as numbers: those inside code spans, fenced code, HTML comments and link targets; parts of
# names (Q4_K_M, fp16, 7B, 2xT4, sm_60, Llama-3-8B, 4-bit, AVX-512, Llama 2, Gemma 3, RTX 3090,
# a machine's "2 cores"); exponents (R^2); references (#14, PR 773, issue 10, item 7, section
# s4); dates (2026-11-29); the question's own parameters (`question_numbers`). A number written
# out in words ("half") is not seen: say it with the block's number, or point at the table.
_MASK = re.compile(r"```.*?```|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.S)
_REFERENCE = re.compile(r"(?:#|(?<!')\bs(?=\d)|\b(?:PRs?|issues?|items?|sections?|Deliver|step)\s*#?)\d+"
                        r"(?:(?:,|, and| and|-)\s*#?\d+)*", re.I)
_DATE = re.compile(r"\b\d{4}-\d{2}(?:-\d{2})?\b")
_NAME = re.compile(r"\b(?:Llama|Gemma|Phi|Qwen|Mistral|Mixtral)[ -]\d+(?:\.\d+)?\b|\b(?:RTX|GTX) \d+"
                   r"|\b\d+[- ]cores?\b|\^\d+")
HEADING = re.compile(r"^(#{2,6}) ", re.M)
PROSE_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)((?<![\d.][+-])[+-])?(\d+(?:,\d{3})*(?:\.\d+)?)"
                          r"(?!\.?\d)(?![A-Za-wyz_]|x[A-Za-z0-9])(?!-bit)")
BLOCK_NUMBER = re.compile(r"(?<![\d.])[+-]?\d+(?:\.\d+)?")


def question_numbers(iteration: str | Path) -> set[str]:
    """Parameters of the question itself, allowed in prose: the question_numbers() of the
    iteration's report_blocks.py (a function returning strings, e.g. Iteration 1's budget hours,
    samples and seconds a sample from shared/data/kaggle.yaml); none when it has none."""
    numbers = getattr(_module(iteration), "question_numbers", None)
    return set(numbers()) if numbers else set()


def _matches(number: str, printed: set[str]) -> bool:
    """`number` (as typed in prose, with its sign if any) is a printed number, or one rounded to
    the prose's decimals (6.4 for a printed 6.41; an integer never stands for a decimal)."""
    if number in printed:
        return True
    decimals = len(number.split(".")[1]) if "." in number else 0
    sign = number[0] if number[0] in "+-" else ""
    return decimals > 0 and any(
        "." in p and len(p.split(".")[1]) > decimals and (p[0] if p[0] in "+-" else "") == sign
        and round(float(p), decimals) == float(number) for p in printed)


def _sections(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of every section of a markdown text (a heading of level 2-6
    to the next heading of the same or a higher level), fenced code ignored."""
    fenced = [m.span() for m in re.finditer(r"```.*?```", text, re.S)]
    heads = [(m.start(), len(m.group(1))) for m in HEADING.finditer(text)
             if not any(a <= m.start() < b for a, b in fenced)]
    spans = []
    for i, (start, level) in enumerate(heads):
        end = next((s for s, lv in heads[i + 1:] if lv <= level), len(text))
        spans.append((start, end))
    return spans


def typed_numbers(iteration: str | Path) -> list[str]:
    """Numbers typed in the prose of the report and its appendices that no generated block of
    the same section prints ("README.md:869: 0.132 in '...(0.132 against 0.146)...'"): a result
    comes from a block (a function of the rows), so prose cannot drift from the rows. The
    section of a number is the smallest one around it (with its subsections)."""
    allowed = question_numbers(iteration)
    out = []
    for path in report_files(iteration):
        text = path.read_text()
        found = [(m.start(), set(BLOCK_NUMBER.findall(m["body"]))) for m in BLOCK.finditer(text)]
        prose = BLOCK.sub(lambda m: m.group(1) + re.sub(r"[^\n]", " ", m["body"]) + m.group(4), text)
        for pattern in (_MASK, _REFERENCE, _DATE, _NAME):
            prose = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
        sections = _sections(text) or [(0, len(text))]
        for m in PROSE_NUMBER.finditer(prose):
            around = [(a, b) for a, b in sections if a <= m.start() < b]
            a, b = max(around, key=lambda s: s[0]) if around else (0, len(text))
            printed = allowed.union(*[nums for at, nums in found if a <= at < b])
            number = (m.group(1) or "") + m.group(2).replace(",", "")
            if not _matches(number, printed):
                line = prose.count("\n", 0, m.start()) + 1
                context = " ".join(text[max(0, m.start() - 40):m.end() + 30].split())
                out.append(f"{path.name}:{line}: {number} in '...{context}...'")
    return out


def check(iteration: str | Path) -> list[str]:
    """Problems with the report: blocks that differ from what the results produce, dead
    figures and appendix links, appendices not linked, numbers typed in the prose."""
    iteration = Path(iteration)
    problems = [f"block {name!r} of {path.name} is stale: run `python -m shared report {iteration}`"
                for path, (_, _, changed) in _generate(iteration).items() for name in changed]
    problems += [f"figure {link} is linked but missing" for link in missing_figures(iteration)]
    problems += _problems_with_links(iteration)
    problems += [f"number typed in prose, not printed by any generated block: {t}" for t in typed_numbers(iteration)]
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
