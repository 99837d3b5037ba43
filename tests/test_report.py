"""The report's generated blocks match the results on disk; linked figures exist."""
import shutil

from shared import report
from shared.machine import REPO

ITERATION = REPO / "iterations" / "01_biggest_model"


def test_generated_blocks_match_the_results_and_figures_exist():
    assert report.check(ITERATION) == []


def test_a_hand_edited_block_is_reported_stale(tmp_path):
    copy = tmp_path / "01_biggest_model"
    shutil.copytree(ITERATION, copy, ignore=shutil.ignore_patterns("executed"))
    text = (copy / "README.md").read_text()
    start = text.index("<!-- BEGIN speed_decode -->\n") + len("<!-- BEGIN speed_decode -->\n")
    (copy / "README.md").write_text(text[:start] + "| typed | by hand |\n" + text[start:])
    problems = report.check(copy)
    assert any("speed_decode" in p for p in problems)
    assert any("missing" in p for p in problems)  # ../../res links do not resolve from tmp
    report.render(copy)
    assert [p for p in report.check(copy) if "stale" in p] == []
