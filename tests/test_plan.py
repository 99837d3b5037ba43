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
    line = [ln for ln in out.splitlines() if "-m shared run" in ln][-1]
    argv = shlex.split(line)
    assert argv[0].endswith("python"), line
    return [sys.executable, *argv[1:]]


def _plan(gpu: str) -> subprocess.CompletedProcess:
    cmd = _make_command("PARAMS=gpu", "PLAN=1", f"GPU={gpu}")
    assert cmd[-3:] == ["--plan", "--gpu", gpu]
    # -X importtime would be noisy; a plan must not import a runtime that loads models
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "sys.modules['llama_cpp'] = None; sys.modules['vllm'] = None; "
             "runpy.run_module('shared', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", probe, *cmd[2:]], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _rows(stdout: str) -> dict:
    """(model, backend, quantization) -> the table row's cells, from the printed markdown table."""
    rows = {}
    for line in stdout.split("\nbatches on ")[0].split("\nother notebooks on ")[0].splitlines():   # the configurations' table, not the batches'
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
    skipped = [ln for ln in out.split("\nbatches on ")[0].splitlines() if ln.startswith("SKIP ")]
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
    from shared.run import gpuplan, runbook
    config = {"speed": {"models": ["mixtral-8x7b-instruct-v0.1"], "backends": ["transformers"],
                        "quantizations": ["none"], "device": "cuda"}}
    monkeypatch.setattr(gpuplan, "visible_gpu", lambda: "TPU v9")
    it = REPO / "iterations" / "01_biggest_model"   # the speed notebook's defaults fill the rest
    assert runbook.skip_unfit(it, config) == config
    assert "no memory plan for this GPU" in capsys.readouterr().out
    monkeypatch.setattr(gpuplan, "visible_gpu", lambda: "T4")
    skipped = runbook.skip_unfit(it, config)["speed"]["skip_configs"]
    assert skipped == ["mixtral-8x7b-instruct-v0.1 transformers none"]


def test_the_plan_covers_the_batches_of_the_gpu_run():
    t4 = _plan("T4").stdout
    assert "batches on T4: 30 configurations x batch sizes" in t4
    assert "SKIP batch gemma-7b-it vllm fp16 x1: 18.1 GB a GPU > 15.7 GB visible" in t4
    assert "SKIP batch mistral-7b-instruct-v0.2-q4_k_m" not in t4
    assert "SKIP batch mistral-7b-instruct-v0.2-awq" not in t4         # 4.16 bits a weight: about 5 GB
    p100 = _plan("P100").stdout
    vllm_rows = [ln for ln in p100.splitlines() if ln.startswith("| ") and "| vllm " in ln]
    assert vllm_rows and all("| False " in ln for ln in vllm_rows)    # vLLM has no Pascal kernels
    assert "SKIP batch gemma-2b-it vllm fp16 x8: vLLM has no kernels for pascal" in p100
    assert "SKIP batch mistral-7b-instruct-v0.2-q4_k_m" not in p100


def test_make_run_skips_the_batch_sizes_predicted_not_to_fit():
    import nbformat
    import yaml

    from shared.run import experiment, gpuplan
    from shared.machine import REPO
    speed = yaml.safe_load((REPO / "iterations/01_biggest_model/params/gpu.yaml").read_text())["speed"]
    label, unfit = gpuplan.unfit_configs(speed, "T4")
    assert "batch gemma-7b-it vllm none 8" in unfit and "gemma-7b-it transformers none" in unfit
    assert not any("mistral-7b-instruct-v0.2-awq" in c for c in unfit)
    assert any("mixtral-8x7b-instruct-v0.1-awq" in c for c in unfit)   # about 25 GB on one T4
    # the speed notebook's batch configurations (the notebook calls experiment.batch_configs on its
    # parameters): the skipped sizes are gone
    nb = nbformat.read(REPO / "iterations/01_biggest_model/speed.ipynb", as_version=4)
    assert any("batch_configs = experiment.batch_configs(globals())" in c.source for c in nb.cells)
    sizes = {(c["model"], c["backend"]): c["batch_sizes"]
             for c in experiment.batch_configs({**speed, "skip_configs": unfit})}
    assert ("gemma-7b-it", "vllm") not in sizes                          # every size skipped: no configuration
    assert sizes[("gemma-2b-it", "vllm")] == "1 8 32 128"
    assert sizes[("mistral-7b-instruct-v0.2-q4_k_m", "llama_cpp")] == "1 8"


def test_the_plan_warns_of_other_notebooks_models_that_do_not_fit():
    """gpu.yaml's EOS and validation-set notebooks load Gemma 7B-it in fp16 (about 18 GB a GPU):
    a plan for one T4 warns of both; on 2xT4 (half the layers a GPU) they fit."""
    one, two = _plan("T4"), _plan("2xT4")
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert "WARN make_validation_set: gemma-7b-it transformers fp16" in one.stdout
    assert "WARN eos: gemma-7b-it transformers fp16" in one.stdout
    assert "other notebooks on 2xT4" in two.stdout and "WARN eos: gemma-7b-it" not in two.stdout


def test_a_plan_of_a_cpu_parameter_set_says_there_is_nothing_to_plan():
    cmd = _make_command("PARAMS=cpu", "PLAN=1", "GPU=T4")
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "runs its speed configurations on 'cpu', not a GPU: nothing to plan" in done.stderr


def test_awq_checkpoints_have_memory_facts_in_the_plan():
    """vLLM's AWQ / GPTQ entries (4.16 bits a weight, quantization.yaml): Mixtral AWQ does not fit
    one T4 and is skipped there; on 2xT4 (tensor parallel, half a GPU each) it fits."""
    one, two = _plan("T4"), _plan("2xT4")
    assert "SKIP batch mixtral-8x7b-instruct-v0.1-awq vllm awq x1" in one.stdout
    assert "no memory facts" not in one.stdout + two.stdout
    assert "SKIP batch mixtral-8x7b-instruct-v0.1-awq" not in two.stdout


def test_a_gpu_without_plan_and_an_unknown_set_stop_before_anything_runs():
    cmd = _make_command("GPU=T4")                       # make run GPU=T4: no PLAN=1
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "add --plan (make run PARAMS=gpu PLAN=1 GPU=T4)" in done.stderr
    cmd = _make_command("PARAMS=nope", "PLAN=1")        # no GPU= on a machine without one
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no parameter set 'nope'" in done.stderr
