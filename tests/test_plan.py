"""`make run PARAMS=gpu PLAN=1 GPU=...` on a machine without a GPU: the command make runs prints
every configuration of the GPU run with predicted memory and time, marks those that would not fit,
loads nothing, and refuses an unknown GPU label naming the known ones."""
import shlex
import subprocess
import sys

import pytest

from shared.machine import REPO


def _make_command(*args: str) -> list[str]:
    """The command `make run ...` would run (make -n), with this Python for the venv's."""
    out = subprocess.run(["make", "-n", "run", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if "-m shared.runbook" in ln][-1]
    argv = shlex.split(line)
    assert argv[0].endswith("python"), line
    return [sys.executable, *argv[1:]]


def _plan(gpu: str) -> subprocess.CompletedProcess:
    cmd = _make_command("PARAMS=gpu", "PLAN=1", f"GPU={gpu}")
    assert cmd[-3:] == ["--plan", "--gpu", gpu]
    # -X importtime would be noisy; a plan must not import a runtime that loads models
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "sys.modules['llama_cpp'] = None; sys.modules['vllm'] = None; "
             "runpy.run_module('shared.runbook', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", probe, *cmd[2:]], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _rows(stdout: str) -> dict:
    """(model, backend, quantization) -> the table row's cells, from the printed markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 10 and cells[0] not in ("model", "") and not cells[0].startswith(":"):
            rows[tuple(cells[:3])] = cells
    return rows


@pytest.mark.parametrize("gpu", ["T4", "2xT4", "P100"])
def test_the_plan_make_runs_prints_every_configuration_with_memory_time_and_fit(gpu):
    done = _plan(gpu)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.startswith(f"plan on {gpu}: ")
    rows = _rows(out)
    # every model x backend x quantization of params/gpu.yaml's speed section: 41 of them
    assert len(rows) == int(out.split(": ")[1].split()[0]) == 41
    mixtral_fp16 = rows[("mixtral-8x7b-instruct-v0.1", "transformers", "fp16")]
    mistral_q4 = rows[("mistral-7b-instruct-v0.2-q4_k_m", "llama_cpp", "Q4_K_M")]
    assert mixtral_fp16[-1] == "False" and float(mixtral_fp16[5]) < 0        # fits, margin (GB)
    assert mistral_q4[-1] == "True" and float(mistral_q4[5]) > 0
    assert 3 < float(mistral_q4[3]) < 8                                         # GB a GPU: 4.4 GB of weights + KV + buffers
    assert float(mistral_q4[6]) > 0 and float(mistral_q4[7]) > float(mistral_q4[6])  # s a call, s in all
    assert "SKIP mixtral-8x7b-instruct-v0.1 transformers fp16" in out
    assert "SKIP mistral-7b-instruct-v0.2-q4_k_m" not in out
    skipped = [ln for ln in out.splitlines() if ln.startswith("SKIP ")]
    assert len(skipped) == sum(r[-1] == "False" for r in rows.values()) == int(out.split(", ")[1].split()[0])


def test_two_t4s_fit_what_one_does_not():
    one, two = _rows(_plan("T4").stdout), _rows(_plan("2xT4").stdout)
    key = ("mixtral-8x7b-instruct-v0.1-q4_k_m", "llama_cpp", "Q4_K_M")
    assert one[key][-1] == "False" and two[key][-1] == "True"
    assert float(two[key][3]) == pytest.approx(float(one[key][3]) / 2, rel=0.1)   # layers split over two GPUs


def test_an_unknown_gpu_label_stops_before_any_compute_naming_the_known_ones():
    done = _plan("TPU")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "unknown GPU 'TPU'" in done.stderr
    for label in ("P100", "T4", "2xT4"):
        assert label in done.stderr
    assert done.stdout == ""


def test_a_run_on_a_gpu_without_facts_skips_nothing_and_says_why(monkeypatch, capsys):
    from shared import gpuplan, runbook
    config = {"speed": {"models": ["mixtral-8x7b-instruct-v0.1"], "backends": ["transformers"],
                        "quantizations": ["none"], "device": "cuda"}}
    monkeypatch.setattr(gpuplan, "visible_gpu", lambda: "TPU v9")
    assert runbook.skip_unfit(config) == config
    assert "no memory plan for this GPU" in capsys.readouterr().out
    monkeypatch.setattr(gpuplan, "visible_gpu", lambda: "T4")
    skipped = runbook.skip_unfit(config)["speed"]["skip_configs"]
    assert skipped == ["mixtral-8x7b-instruct-v0.1 transformers none"]
