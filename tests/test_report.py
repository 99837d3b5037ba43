"""The report's generated blocks match the results on disk; linked figures exist."""
import shutil

from shared.report import report
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


def test_the_gpu_answer_gives_ranges_as_ranges_and_names_answers_that_fail_long_inputs():
    """Fresh-user findings on issue #21's answer: a card whose column is a range (fewer than two
    rows of its own) shows its calls a sample as the range, never as a bold point; the card
    whose answer is too slow at the seed's long inputs gets a line saying so, with the answer
    for that workload; and the block says which line of a card is the answer."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("rb", ITERATION / "report_blocks.py")
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    text = rb.gpu_answer()
    assert "Read the first line of each card" in text
    long = rb._roofline_rows("prediction_long")
    for line in (line for line in text.splitlines() if line.startswith("| ") and "range " in line.split("|")[4]):
        assert line.split("|")[7].strip().startswith("range "), line     # calls a sample of a range card
    answers = rb.answer.answer(rb._roofline_rows("prediction"), min_bits=4)
    for a in answers[answers["hardware"].isin(rb.ANSWER_CARDS)].to_dict("records"):
        twin = long[(long["hardware"] == a["hardware"]) & (long["model"] == a["model"])
                    & (long["quantization"] == a["quantization"]) & long["batch_size"].eq(1)
                    & long["split"].fillna("layer").eq("layer")]
        failing = not bool(twin["fast_enough"].iloc[0])
        assert (f"**{a['hardware']} at the seed's long inputs**" in text) == failing, a["hardware"]
    assert "**P100 at the seed's long inputs**" in text   # the committed rows: 13B's prefill at 3500 tokens


TINY_BLOCKS = '''
BLOCKS = {"rows": lambda: "| run | decode_tok_s |\\n|---|---|\\n| a | 6.41 |\\n| b | 0.153 |",
          "more": lambda: "3 rows, 2026-12-02"}


def question_numbers():   # the question's own numbers, allowed in prose (as Iteration 1 gives them)
    return {"9", "1300"}
'''


def tiny(tmp_path, prose: str, appendix: str | None = None):
    """An iteration folder with one generated block in its report (and optionally an appendix)."""
    it = tmp_path / "97_tiny"
    it.mkdir(parents=True)
    (it / "report_blocks.py").write_text(TINY_BLOCKS)
    (it / "README.md").write_text("# Tiny\n\n## Results\n\n" + prose
                                  + "\n\n<!-- BEGIN rows -->\n<!-- END rows -->\n\n## Other\n\nNothing here.\n")
    if appendix is not None:
        (it / "appendix_more.md").write_text(appendix)
    report.render(it)
    return it


def test_appendix_blocks_are_rendered_and_checked_with_the_report(tmp_path):
    it = tiny(tmp_path, "See [the appendix](appendix_more.md).",
              "# More\n\n<!-- BEGIN more -->\nstale\n<!-- END more -->\n")
    assert "3 rows, 2026-12-02" in (it / "appendix_more.md").read_text()  # rendered with the report
    assert report.check(it) == []
    (it / "appendix_more.md").write_text((it / "appendix_more.md").read_text().replace("3 rows", "4 rows"))
    assert any("'more' of appendix_more.md is stale" in p for p in report.check(it))


def test_an_appendix_the_report_does_not_link_and_a_dead_link_are_reported(tmp_path):
    it = tiny(tmp_path, "See [gone](appendix_gone.md).", "# More\n")
    problems = report.check(it)
    assert any("appendix appendix_more.md is not linked" in p for p in problems)
    assert any("appendix_gone.md, which is missing" in p for p in problems)


def test_a_number_typed_in_prose_is_reported_unless_a_block_of_its_section_prints_it(tmp_path):
    ok = ("Decode reached 6.4 tok/s (run a, rounded) and 0.153 on run b, within 9 h for 1300 samples "
          "on 2 cores, Llama 2 13B and Q4_K_M on 2xT4 (issue 21, PR #773, 2026-12-04), `n_ctx 616`.")
    assert report.typed_numbers(tiny(tmp_path / "ok", ok)) == []
    typed = report.typed_numbers(tiny(tmp_path / "typed", ok + " Direct scored 0.146, 2.6x faster."))
    assert [t.split(" in ")[0] for t in typed] == ["README.md:5: 0.146", "README.md:5: 2.6"]
    # a block of another section does not vouch for a number: "6.41" lives under Results only
    other = tiny(tmp_path / "other", ok)
    text = (other / "README.md").read_text().replace("Nothing here.", "It ran at 6.41 tok/s.")
    (other / "README.md").write_text(text)
    assert [t.split(" in ")[0] for t in report.typed_numbers(other)] == ["README.md:16: 6.41"]
    assert any("number typed in prose" in p for p in report.check(other))


def test_the_same_mean_prompt_found_on_two_machines_is_one_paragraph(tmp_path, monkeypatch):
    """Two machines whose searches found the same prompt with the same scores give one paragraph
    naming both (the report printed it twice); a third machine's different result its own."""
    import importlib.util

    from shared import results
    spec = importlib.util.spec_from_file_location("rb", ITERATION / "report_blocks.py")
    rb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rb)
    row = results.read(REPO / "res" / "01_biggest_model" / "mean_prompt.jsonl").iloc[-1].to_dict()
    rows = [{**row, "machine": "CPU A (2 cores)"}, {**row, "machine": "CPU B (2 cores)"},
            {**row, "machine": "CPU C (2 cores)", "prompt": "another prompt"}]
    results.append(tmp_path / "mean_prompt.jsonl", rows)
    shutil.copy(REPO / "res" / "01_biggest_model" / "prompt_engineering.jsonl", tmp_path)
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    paragraphs = [p for p in rb.prompt_strategies().split("\n\n") if p.startswith("**Mean prompt**")]
    assert len(paragraphs) == 2
    assert "CPU A (2 cores), CPU B (2 cores)" in paragraphs[0] and "CPU C" not in paragraphs[0]
    assert "`another prompt`" in paragraphs[1] and paragraphs[1].endswith("on CPU C (2 cores).")
