"""The submission command on SmolLM2-135M (llama.cpp) and the embedded encoder: one non-blank
prediction per id in input order, fallbacks counted, resume after an interruption, errors first."""
import pandas as pd
import pytest

from shared import dataio, metrics, prompts, submit
from shared.catalog import LabError

SMOL = "smollm2-135m-instruct"
PAIRS = pd.DataFrame({
    "id": ["z9", "a1", "m5", "b2"],   # not sorted: the output must keep this order
    "original_text": ["The bus leaves at nine.", "Dinner is at six.", "The shop is closed.",
                      "Bring an umbrella."],
    "rewritten_text": ["Arr, the bus sails at nine, matey!", "Supper shall be served at six o'clock.",
                       "Alas, the shop's doors are shut.", "Yo, grab an umbrella, fam."],
    "rewrite_prompt": ["Rewrite this as a pirate.", "Make it formal.", "Make it dramatic.",
                       "Make it sound like a teenager."],
})


@pytest.fixture
def test_csv(tmp_path):
    return dataio.write_csv(PAIRS, tmp_path / "train.csv")


def _run(test_csv, out, **kw):
    options = dict(model=SMOL, n_threads=2, max_new_tokens=8, encoder="all-MiniLM-L6-v2",
                   progress=False)
    return submit.run(test_csv, out=out, **{**options, **kw})


def test_one_non_blank_prompt_per_id_in_order(test_csv, tmp_path):
    out = tmp_path / "submission.csv"
    summary = _run(test_csv, out, strategy="direct")
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["id", "rewrite_prompt"]
    assert list(sub["id"]) == list(PAIRS["id"])
    assert sub["rewrite_prompt"].str.strip().ne("").all()
    assert summary["computed"] == 4 and summary["resumed"] == 0
    assert summary["s_per_sample"] > 0
    assert summary["hours"] == pytest.approx(summary["s_per_sample"] * 1300 / 3600)
    assert summary["score"]["n"] == 4 and summary["score"]["encoder"] == "all-MiniLM-L6-v2"
    text = submit.report(summary)
    assert "s per sample" in text and "1300 samples" in text and "all-MiniLM-L6-v2" in text


def test_blank_predictions_become_the_fallback_and_are_counted(test_csv, tmp_path):
    def blank_every_other(lm, strategy, original, rewritten, **kw):
        row = prompts.recover(lm, "fixed_prompt", original, rewritten)
        return {**row, "prediction": "" if "bus" in original or "shop" in original else "Make it so."}

    out = tmp_path / "submission.csv"
    summary = _run(test_csv, out, strategy="fixed_prompt", _recover=blank_every_other)
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert summary["fallbacks"] == 2
    assert list(sub["rewrite_prompt"]) == [metrics.FALLBACK_PROMPT, "Make it so.",
                                          metrics.FALLBACK_PROMPT, "Make it so."]


def test_an_interrupted_submission_resumes_without_redoing_rows(test_csv, tmp_path):
    out = tmp_path / "submission.csv"
    calls = []

    def interrupt_after_two(lm, strategy, original, rewritten, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises between two rows
        calls.append(original)
        return prompts.recover(lm, strategy, original, rewritten, **kw)

    with pytest.raises(KeyboardInterrupt):
        _run(test_csv, out, strategy="direct", _recover=interrupt_after_two)
    assert not out.exists()                                   # no half submission
    assert len(pd.read_json(submit.sidecar(out), lines=True)) == 2

    again = []

    def counting(lm, strategy, original, rewritten, **kw):
        again.append(original)
        return prompts.recover(lm, strategy, original, rewritten, **kw)

    summary = _run(test_csv, out, strategy="direct", _recover=counting)
    assert again == list(PAIRS["original_text"][2:])          # only the rows not done before
    assert summary["computed"] == 2 and summary["resumed"] == 2
    assert list(pd.read_csv(out, dtype=str)["id"]) == list(PAIRS["id"])

    # another strategy (another template hash) on the same ids does not reuse those rows
    other = _run(test_csv, out, strategy="fixed_prompt")
    assert other["computed"] == 4


@pytest.mark.parametrize("kw, message", [
    (dict(strategy="telepathy"), "unknown strategy"),
    (dict(strategy="direct", model="no-such-model"), "unknown model"),
    (dict(strategy="direct", backend="onnx"), "unknown backend"),
])
def test_bad_arguments_fail_before_any_model_loads(test_csv, tmp_path, kw, message, monkeypatch):
    monkeypatch.setattr("shared.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(LabError, match=message):
        _run(test_csv, tmp_path / "s.csv", **kw)


def test_bad_file_and_output_folder(tmp_path, test_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,original_text\n1,hello\n")
    assert submit.main([str(bad), "--strategy", "fixed_prompt", "--out", str(tmp_path / "s.csv")]) == 2
    with pytest.raises(LabError, match="does not exist"):
        _run(test_csv, tmp_path / "nowhere" / "s.csv", strategy="fixed_prompt")


def test_ctrl_c_on_the_command_then_rerun_resumes(tmp_path):
    """A real interruption: SIGINT to `python -m shared.submit` after two finished rows."""
    import signal
    import subprocess
    import sys
    import time

    from shared.machine import REPO
    many = pd.concat([PAIRS.assign(id=PAIRS["id"] + f"-{k}") for k in range(3)], ignore_index=True)
    test = dataio.write_csv(many, tmp_path / "test.csv")
    out = tmp_path / "submission.csv"
    command = [sys.executable, "-m", "shared.submit", str(test), "--strategy", "direct",
               "--model", SMOL, "--n-threads", "2", "--max-new-tokens", "8", "--out", str(out),
               "--encoder", "all-MiniLM-L6-v2"]
    # Ctrl-C's default action, whatever this test inherited: a job started in the background
    # by a non-interactive shell (CI, `make test &`) has SIGINT ignored, and Python keeps that
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    side = submit.sidecar(out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if side.exists() and len(side.read_text().splitlines()) >= 2:
            child.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-2000:]
    assert "resume" in err and not out.exists()
    finished = len(side.read_text().splitlines())
    assert 2 <= finished < len(many)

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{finished} already done" in again.stdout
    assert f"({len(many) - finished} computed now, {finished} resumed)" in again.stdout
    assert "SCS" in again.stdout and "1300 samples" in again.stdout
    assert list(pd.read_csv(out, dtype=str)["id"]) == list(many["id"])
