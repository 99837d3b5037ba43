"""A parameter set this machine cannot run stops before its first configuration, with one
message listing everything missing (device, weights present or downloadable, memory)."""

import pytest

from shared.run import preflight, runbook
from shared.machine import REPO

ITERATION = REPO / "iterations" / "01_biggest_model"


def job(name):
    config = runbook.load_params(ITERATION, name)
    return ITERATION, config["notebooks"], config


def test_the_gpu_set_on_a_cpu_only_offline_machine_stops_before_anything_runs(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tables = {p: p.read_bytes() for p in (REPO / "res" / "01_biggest_model").glob("*.jsonl")}
    with pytest.raises(SystemExit) as stop:
        runbook.main([str(ITERATION), "--params", "gpu"])
    message = str(stop.value)
    assert message.startswith("pre-flight for --params gpu") and "nothing was run" in message
    if preflight.cuda_missing():
        assert "no CUDA device" in message and "56 configurations of speed, length_scaling, eos, " \
            "make_validation_set, prompt_engineering ask for device cuda" in message
    absent = [name for name in ["mixtral-8x7b-instruct-v0.1", "gemma-7b-it-gguf", "phi-2",
                                "mistral-7b-instruct-v0.2-awq"]  # the batch section's too
              if not preflight.on_machine(preflight.catalog.get(name))]
    assert all(f"{name} (" in message for name in absent) and "HF_HUB_OFFLINE is set" in message
    assert message.count("\n  - ") == len(preflight.problems(*job("gpu")))  # one message, each kind once
    assert "==" not in capsys.readouterr().out  # no notebook started
    assert not (ITERATION / "executed" / "gpu").exists()
    assert {p: p.read_bytes() for p in tables} == tables  # no row appended


def test_the_main_jobs_cpu_sets_pass_here():
    for name in ["cpu", "cpu_full"]:
        assert preflight.problems(*job(name)) == []


def test_an_unreachable_hub_is_named_without_waiting_for_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert preflight.hub_reachable().startswith("no connection to 127.0.0.1:9 (ConnectionRefusedError")


def test_every_kind_of_problem_is_listed_together(tmp_path, monkeypatch):
    """Unknown model, a backend/quantization pair that cannot load, a bad device, weights too
    big for the memory here: all in the one list, each notebook's defaults filled in."""
    it = tmp_path / "95_pre"
    for name in ["eos", "speed", "make_validation_set"]:
        (it / f"{name}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (it / f"{name}.ipynb").write_bytes((ITERATION / f"{name}.ipynb").read_bytes())
    sections = {"eos": {"models": ["smollm2-135m-instruct", "smollm2-135m-instrukt"]},
                "speed": {"models": ["qwen2.5-coder-1.5b-instruct"], "backends": ["transformers", "llama_cpp"],
                          "quantizations": ["none", "3bit"]},
                "make_validation_set": {"device": "tpu"}}
    monkeypatch.setattr(preflight, "available_gb", lambda device: 2.0)  # a machine with 2 GB free
    found = preflight.problems(it, ["eos", "speed", "make_validation_set"], sections)
    text = "\n".join(found)
    assert "eos: unknown model 'smollm2-135m-instrukt'" in text
    assert "speed: qwen2.5-coder-1.5b-instruct transformers 3bit: transformers cannot do quantization '3bit'" in text
    assert "make_validation_set: smollm2-135m-instruct llama_cpp" in text and "device must be 'cpu' or 'cuda'" in text
    assert "weights larger than the memory available here: qwen2.5-coder-1.5b-instruct transformers none" in text
    assert "eos: gemma-3-270m" not in text  # eos's default models apply only when models is not given
    assert len(found) == 4  # weights, unknown model, 3bit, tpu: nothing else (the embedded models are here)


def test_the_gpu_sets_batch_section_is_checked_too():
    """The pre-flight once read no batch_* key: the vLLM AWQ / GPTQ checkpoints of params/gpu.yaml
    were never checked before a GPU run. It expands the speed section as the notebook does."""
    it, names, config = job("gpu")
    found = {(c.model, c.backend) for c in preflight.configs(it, ["speed"], config)}
    for model in ["mistral-7b-instruct-v0.2-awq", "mistral-7b-instruct-v0.2-gptq", "llama-2-13b-chat-awq",
                  "mixtral-8x7b-instruct-v0.1-awq"]:
        assert (model, "vllm") in found
    assert ("mistral-7b-instruct-v0.2-q4_k_m", "llama_cpp") in found
    from shared.run import experiment, notebooks
    p = {**notebooks.defaults(it / "speed.ipynb"), **config["speed"]}
    expected = {(c["model"], c["backend"], c["quantization"])
                for c in experiment.speed_configs(p) + experiment.batch_configs(p)}
    assert {(c.model, c.backend, c.quantization) for c in preflight.configs(it, ["speed"], config)} == expected
