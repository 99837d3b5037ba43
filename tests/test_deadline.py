"""The deadline does not count the model's load; no projection without a computed row (issue 24;
once in tests/test_fault_kinds_24.py).
"""


from shared.task import dataio, submit

from lab_inputs import OPTIONS, PAIRS, no_load


# --- 24.4 the deadline does not count the model's load; no projection without a computed row -----

def test_the_deadline_counts_from_the_end_of_the_load(tmp_path, monkeypatch):
    """The reported case (simonoppowa/OpenNutriTracker#774's kind): a load longer than the rows'
    share left no row computed. The clock here jumps two hours while the real model loads."""
    import time as real_time

    from shared.models import loading
    offset = [0.0]
    load = loading.load

    def slow_load(*a, **k):
        lm = load(*a, **k)
        offset[0] += 7200.0   # a 7B model read from a slow disk, or a first GGUF conversion
        return lm

    class Clock:
        @staticmethod
        def perf_counter():
            return real_time.perf_counter() + offset[0]

    monkeypatch.setattr("shared.models.loading.load", slow_load)
    monkeypatch.setattr(submit, "time", Clock)
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    summary = submit.run(test, "direct", tmp_path / "s.csv", budget_hours=1.0, expected_rows=4, **OPTIONS)
    assert (summary["computed"], summary["deadline_fallbacks"]) == (4, 0)
    assert summary["fits"] is True and summary["s_per_sample"] < 3600


def test_a_run_without_a_computed_row_makes_no_projection(tmp_path, monkeypatch):
    test = dataio.write_csv(PAIRS, tmp_path / "test.csv")
    cut = submit.run(test, "direct", tmp_path / "s.csv", budget_hours=1e-12, **OPTIONS)
    assert (cut["computed"], cut["deadline_fallbacks"]) == (0, 4)
    assert cut["s_per_sample"] is None and cut["hours"] is None and cut["fits"] is None
    text = submit.report(cut)
    assert "no row was computed, so no time per sample and no projection" in text
    assert "fits" not in text and "0.00 s per sample" not in text
    no_load(monkeypatch)
    blank = tmp_path / "blank.csv"
    blank.write_text("id,original_text,rewritten_text\n1,,\n2, ,x\n")
    assert "no projection" in submit.report(submit.run(blank, "direct", tmp_path / "b.csv", **OPTIONS))
