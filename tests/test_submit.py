"""The submission command on SmolLM2-135M (llama.cpp) and the embedded encoder: one non-blank
prediction per id in input order, fallbacks counted, resume after an interruption, errors first."""
import pandas as pd
import pytest

from shared.task import dataio, metrics, prompts, submit
from shared.errors import LabError

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
    monkeypatch.setattr("shared.models.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(LabError, match=message):
        _run(test_csv, tmp_path / "s.csv", **kw)


def test_bad_file_and_output_folder(tmp_path, test_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,original_text\n1,hello\n")
    assert submit.main([str(bad), "--strategy", "fixed_prompt", "--out", str(tmp_path / "s.csv")]) == 2
    with pytest.raises(LabError, match="does not exist"):
        _run(test_csv, tmp_path / "nowhere" / "s.csv", strategy="fixed_prompt")


def test_ctrl_c_on_the_command_then_rerun_resumes(tmp_path):
    """A real interruption: SIGINT to `python -m shared submit` after two finished rows."""
    import signal
    import subprocess
    import sys
    import time

    from shared.machine import REPO
    many = pd.concat([PAIRS.assign(id=PAIRS["id"] + f"-{k}") for k in range(3)], ignore_index=True)
    test = dataio.write_csv(many, tmp_path / "test.csv")
    out = tmp_path / "submission.csv"
    command = [sys.executable, "-m", "shared.task.submit", str(test), "--strategy", "direct",
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


# ---- the device (issue 15.1) -----------------------------------------------------------------

def test_device_auto_falls_back_to_the_cpu_and_says_so(test_csv, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: auto picks it")
    out = tmp_path / "submission.csv"
    summary = _run(test_csv, out, strategy="direct", device="auto", max_new_tokens=4)
    assert summary["device"] == "cpu" and "no GPU" in summary["device_note"]
    assert summary["n_gpu_layers"] == 0
    assert "running on the CPU" in capsys.readouterr().out
    assert "on cpu (device auto: no GPU" in submit.report(summary)
    side = pd.read_json(submit.sidecar(out), lines=True)
    assert side["device"].eq("cpu").all() and side["device_requested"].eq("auto").all()
    assert side["n_gpu_layers"].eq(0).all()


@pytest.mark.parametrize("backend", ["llama_cpp", "transformers"])
def test_device_cuda_without_a_gpu_fails_before_loading(test_csv, tmp_path, backend, monkeypatch):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    monkeypatch.setattr("shared.models.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(LabError, match="device cuda asked for, but .*no"):
        _run(test_csv, tmp_path / "s.csv", strategy="direct", backend=backend, device="cuda")
    assert submit.main([str(test_csv), "--strategy", "direct", "--model", SMOL, "--device", "cuda",
                        "--out", str(tmp_path / "s.csv")]) == 2


# ---- resuming keeps only answers made with the same settings (issue 17.2) --------------------

@pytest.mark.parametrize("first, second", [
    (dict(max_new_tokens=2), dict(max_new_tokens=8)),
    (dict(max_text_tokens=3), dict(max_text_tokens=384)),
    (dict(batch_size=1, backend="transformers"), dict(batch_size=2, backend="transformers")),
    (dict(reuse_prefix=True), dict(reuse_prefix=False)),
])
def test_a_setting_that_changes_answers_is_not_resumed_across(test_csv, tmp_path, first, second):
    out = tmp_path / "submission.csv"
    a = _run(test_csv, out, strategy="direct", **first)
    b = _run(test_csv, out, strategy="direct", **second)
    assert a["computed"] == 4 and b["computed"] == 4 and b["resumed"] == 0
    c = _run(test_csv, out, strategy="direct", **second)   # the same settings again: all resumed
    assert c["computed"] == 0 and c["resumed"] == 4
    side = pd.read_json(submit.sidecar(out), lines=True)
    assert side["settings_hash"].nunique() == 2
    key, value = next(iter(second.items()))
    assert side[key].iloc[-1] == value


def test_a_batch_on_a_backend_that_answers_one_prompt_at_a_time_is_refused(test_csv, tmp_path, capsys,
                                                                          monkeypatch):
    """--batch-size 4 on llama.cpp once ran one by one with prefix reuse off, saying nothing."""
    monkeypatch.setattr("shared.models.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))
    out = tmp_path / "submission.csv"
    with pytest.raises(LabError, match=r"--batch-size 4 with --backend llama_cpp: llama_cpp answers one "
                                       r"prompt at a time.*--batch-size 1.*transformers.*vllm"):
        _run(test_csv, out, strategy="direct", backend="llama_cpp", batch_size=4)
    assert not out.exists() and not submit.sidecar(out).exists()
    assert submit.main([str(test_csv), "--strategy", "direct", "--model", SMOL, "--batch-size", "4",
                        "--out", str(out)]) == 2
    assert "answers one prompt at a time" in capsys.readouterr().err
    assert _run(test_csv, out, strategy="fixed_prompt", batch_size=4)["rows"] == 4  # no model: no batch


# ---- a chat strategy on a base model; a run where every row fails (issue 17.5) ---------------

def test_a_chat_strategy_on_a_base_model_fails_before_loading(test_csv, tmp_path, monkeypatch):
    from shared.models import catalog
    monkeypatch.setattr("shared.models.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))
    gemma_file = catalog.resolve(catalog.get("gemma-3-270m"))
    for model in ("gemma-3-270m", str(gemma_file)):        # the catalog's entry, and its file as a path
        with pytest.raises(LabError, match="no chat template"):
            _run(test_csv, tmp_path / "s.csv", strategy="direct", model=model)
        assert submit.main([str(test_csv), "--strategy", "few_shot_direct", "--model", model,
                            "--out", str(tmp_path / "s.csv")]) == 2
    assert _run(test_csv, tmp_path / "s.csv", strategy="mean_prompt", model="gemma-3-270m")["errors"] == 0


def test_a_run_where_every_row_fails_exits_1(tmp_path, capsys):
    """Texts longer than the context (llama.cpp n_ctx 4096, nothing cut): every row errors."""
    long = PAIRS.assign(original_text=PAIRS["original_text"] * 1500)
    test = dataio.write_csv(long, tmp_path / "long.csv")
    out = tmp_path / "s.csv"
    code = submit.main([str(test), "--strategy", "direct", "--model", SMOL, "--n-threads", "2",
                        "--max-text-tokens", "100000", "--encoder", "all-MiniLM-L6-v2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAILED: every one of the 4 computed rows failed" in printed and "exceeds the context" in printed
    assert "(fits)" not in printed.split("FAILED")[1]
    assert list(pd.read_csv(out, dtype=str)["id"]) == list(PAIRS["id"])   # still every id
    # a failed row is not "done": the same command with a cut computes the rows again
    again = _run(test, out, strategy="direct", max_text_tokens=64)
    assert again["computed"] == 4 and again["errors"] == 0


# ---- the deadline guard (issue 15.4) ---------------------------------------------------------

def test_the_deadline_switches_the_remaining_rows_to_the_fallback(tmp_path):
    many = pd.concat([PAIRS.assign(id=PAIRS["id"] + f"-{k}") for k in range(6)], ignore_index=True)
    test = dataio.write_csv(many, tmp_path / "test.csv")
    out = tmp_path / "submission.csv"
    budget_s = 3.0
    summary = _run(test, out, strategy="direct", budget_hours=budget_s / 3600,
                   expected_rows=len(many))
    n, computed, cut = len(many), summary["computed"], summary["deadline_fallbacks"]
    assert computed >= 1 and cut >= 1 and computed + cut == n
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(sub["id"]) == list(many["id"])                              # every id, in order
    assert (sub["rewrite_prompt"].iloc[computed:] == metrics.FALLBACK_PROMPT).all()  # the rest, at the end
    side = pd.read_json(submit.sidecar(out), lines=True)
    assert side["skipped"].eq("deadline").sum() == cut
    assert list(side.loc[side["skipped"].eq("deadline"), "id"]) == list(many["id"][computed:])
    # the computed rows took the budget (loading included): one more would not have fitted
    assert side["seconds"].iloc[:computed].sum() <= budget_s
    assert "DEADLINE: " in submit.report(summary) and summary["fallbacks"] >= cut
    # with time enough, a rerun computes only the rows the deadline cut
    again = _run(test, out, strategy="direct", expected_rows=len(many))
    assert again["computed"] == cut and again["resumed"] == computed and again["deadline_fallbacks"] == 0


# ---- batches (issue 15.5) --------------------------------------------------------------------

def test_batched_submission_keeps_order_and_answers(test_csv, tmp_path):
    one = _run(test_csv, tmp_path / "one.csv", strategy="direct", backend="transformers", batch_size=1)
    four = _run(test_csv, tmp_path / "four.csv", strategy="direct", backend="transformers", batch_size=3)
    a = pd.read_csv(tmp_path / "one.csv", dtype=str)
    b = pd.read_csv(tmp_path / "four.csv", dtype=str)
    assert list(b["id"]) == list(PAIRS["id"])
    assert a["rewrite_prompt"].tolist() == b["rewrite_prompt"].tolist()
    assert four["computed"] == 4 and four["samples_per_s"] > 0 and one["samples_per_s"] > 0
    side = pd.read_json(submit.sidecar(tmp_path / "four.csv"), lines=True)
    assert side["batched"].tolist() == [True, True, True, False]   # a last batch of one
    assert "samples/s" in submit.report(four)


@pytest.mark.gpu
@pytest.mark.parametrize("backend, batch_size", [("transformers", 4), ("llama_cpp", 1)])
def test_device_auto_takes_the_gpu(test_csv, tmp_path, backend, batch_size):
    """On a CUDA machine (a CUDA build of llama-cpp-python for that backend): auto picks CUDA."""
    from shared.models import loading
    if not loading.gpu_available(backend)[0]:
        pytest.skip(f"{backend} sees no GPU here")
    out = tmp_path / "submission.csv"
    summary = _run(test_csv, out, strategy="direct", backend=backend, device="auto", batch_size=batch_size)
    assert summary["device"] == "cuda" and summary["computed"] == 4 and summary["errors"] == 0
    assert summary.get("n_gpu_layers", -1) == -1 and summary.get("device_map", "auto") == "auto"
    assert list(pd.read_csv(out, dtype=str)["id"]) == list(PAIRS["id"])


def test_shards_of_a_submission_merge_into_the_whole_run(test_csv, tmp_path):
    from shared.task import shards
    whole = _run(test_csv, tmp_path / "whole.csv", strategy="direct", backend="llama_cpp")
    parts = []
    for i in (1, 2):
        s = _run(test_csv, tmp_path / f"part{i}.csv", strategy="direct", backend="llama_cpp", shard=f"{i}/2")
        assert s["rows"] == 2 and s["computed"] == 2
        parts.append(tmp_path / f"part{i}.csv")
    assert pd.read_csv(parts[0], dtype=str)["id"].tolist() == ["z9", "m5"]  # rows 1 and 3
    shards.merge(test_csv, parts, tmp_path / "merged.csv")
    merged = pd.read_csv(tmp_path / "merged.csv", dtype=str)
    assert merged.equals(pd.read_csv(tmp_path / "whole.csv", dtype=str)) and whole["rows"] == 4
    with pytest.raises(LabError, match="i/n"):
        _run(test_csv, tmp_path / "x.csv", strategy="direct", shard="3/2")


@pytest.mark.vllm_env
def test_the_command_with_backend_vllm_runs_in_the_vllm_environment(test_csv, tmp_path):
    import subprocess
    import sys
    from shared.machine import REPO
    out = tmp_path / "vllm.csv"
    cmd = [sys.executable, "-m", "shared.task.submit", str(test_csv), "--strategy", "direct", "--model", SMOL,
           "--backend", "vllm", "--batch-size", "3", "--n-threads", "2", "--max-new-tokens", "8",
           "--encoder", "all-MiniLM-L6-v2", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend vllm: running in" in done.stderr and "SCS" in done.stdout
    sub = pd.read_csv(out, dtype=str)
    assert sub["id"].tolist() == PAIRS["id"].tolist() and sub["rewrite_prompt"].str.strip().all()
    side = pd.read_json(submit.sidecar(out), lines=True)
    assert set(side["backend"]) == {"vllm"} and side["batched"].tolist() == [True, True, True, False]
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "4 already done" in again.stdout  # resumed, nothing loaded


def test_the_command_records_its_summary_with_the_settings_when_asked(test_csv, tmp_path):
    """--results-dir appends one row to DIR/submissions.jsonl: the score, the seconds a sample and
    the settings that change time or answers (the report's submissions block reads them)."""
    from shared import results
    args = [str(test_csv), "--strategy", "few_shot", "--model", SMOL, "--n-threads", "2",
            "--max-new-tokens", "8", "--encoder", "all-MiniLM-L6-v2", "--out", str(tmp_path / "s.csv")]
    assert submit.main(args + ["--no-reuse-prefix", "--results-dir", str(tmp_path / "res")]) == 0
    assert submit.main(args + ["--fresh"]) == 0  # not asked: no row
    rows = results.read(tmp_path / "res" / "submissions.jsonl")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["reuse_prefix"] == False and row["backend"] == "llama_cpp" and row["test"] == "train.csv"  # noqa: E712
    assert row["max_new_tokens"] == 8 and row["score_n"] == 4 and row["s_per_sample"] > 0 and row["machine"]
