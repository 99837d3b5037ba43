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


def test_batch_verdict_says_conversion_only_where_that_machine_converted(tmp_path, monkeypatch):
    """A model's one-time GGUF conversion is part of vLLM's start-up only on the machine whose row
    says it converted (from_cache false): the committed Qwen rows, copied to a second machine that
    found the conversion in its cache, must not say so there (a machine-blind set did)."""
    import importlib.util

    from shared import results
    spec = importlib.util.spec_from_file_location("rb", REPO / "iterations" / "01_biggest_model" / "report_blocks.py")
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    rows = results.read(REPO / "res" / "01_biggest_model" / "batch.jsonl")
    rows = rows[rows["model"].eq("qwen2.5-coder-1.5b-instruct") & rows["machine"].eq(rows["machine"].iloc[0])]
    first = rows.assign(from_cache=rows["backend"].ne("vllm"))                       # converted here
    second = rows.assign(from_cache=True, machine="CPU Other Vendor Chip (2 cores)")  # found it cached
    results.append(tmp_path / "batch.jsonl", first.to_dict("records") + second.to_dict("records"))
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    lines = [line for line in rb.batch_verdict().splitlines() if line.startswith("- qwen")]
    assert len(lines) == 2
    by_machine = {("Other Vendor Chip 2c" in line): line for line in lines}
    assert "one-time GGUF conversion" in by_machine[False]
    assert "one-time GGUF conversion" not in by_machine[True]


def test_the_gpu_answer_comes_first_with_prefill_and_decode_seconds_per_kaggle_card():
    """Issue #21: the answer right after the Goal, per Kaggle card (no P4), with calibrated prefill
    and decode seconds of a call side by side, calls a sample with an interval, the largest n_ctx,
    the seed's long inputs, and the rows (dates, builds) it rests on."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("rb", ITERATION / "report_blocks.py")
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    text = rb.gpu_answer()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    head = table[0]
    for column in ("prefill s a call", "decode s a call", "calls a sample", "largest n_ctx", "at 3500 input tokens"):
        assert column in head
    cards = {line.split("|")[1].strip() for line in table[2:]}
    assert cards == {"P100", "T4", "2xT4"}
    assert any("row split, uncalibrated" in line for line in table) and "early 2024" in text and "2024-01" in text
    readme = (ITERATION / "README.md").read_text().splitlines()
    goal, begin = readme.index("## Goal"), readme.index("<!-- BEGIN gpu_answer -->")
    assert begin < 60 and [line for line in readme[goal + 1:begin] if line.startswith("## ")] == ["## Answer"]
