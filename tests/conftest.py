"""Shared fixtures: the real embedded models, loaded once per test session."""
import pytest

from shared.models import loading

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma-3-270m"


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA device")
    from shared.models import envs
    if envs.importable("vllm"):
        skip_vllm = None
    elif envs.vllm_python().exists():
        skip_vllm = pytest.mark.skip(reason=f"vLLM lives in {envs.vllm_python()}, not in this Python: "
                                            "make test runs these tests there (-m vllm)")
    else:
        skip_vllm = pytest.mark.skip(reason="vLLM is not installed: make setup VLLM=1 (CI does)")
    skip_env = pytest.mark.skip(reason="no vLLM environment: make setup VLLM=1 (CI does)")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)
        if "vllm" in item.keywords and skip_vllm is not None:
            item.add_marker(skip_vllm)
        if "vllm_env" in item.keywords and not (envs.importable("vllm") or envs.vllm_python().exists()):
            item.add_marker(skip_env)


@pytest.fixture(scope="session")
def smol_hf():
    lm = loading.load(SMOL, "transformers", n_threads=2)
    yield lm


@pytest.fixture(scope="session")
def gemma_hf():
    return loading.load(GEMMA, "transformers", n_threads=2)


@pytest.fixture(scope="session")
def smol_llama():
    return loading.load(SMOL, "llama_cpp", n_threads=2)


@pytest.fixture(scope="session")
def gemma_llama():
    return loading.load(GEMMA, "llama_cpp", n_threads=2)


CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """`make wheelhouse`'s folder for this Python (KAGGLE_PYTHON = the running version), made
    once a session by scripts/make_wheelhouse.sh: its portable llama-cpp-python wheel is built
    once into .whl/ (about 3 minutes on 2 cores) and taken from there afterwards."""
    import os
    import subprocess
    import sys
    from shared.machine import REPO
    wh = tmp_path_factory.mktemp("wheelhouse") / "wheels"
    env = {**os.environ, "KAGGLE_PYTHON": "%d.%d" % sys.version_info[:2]}
    env.pop("LLAMA_CMAKE_ARGS", None)  # the wheelhouse's default: portable (-DGGML_NATIVE=OFF)
    made = subprocess.run([str(REPO / "scripts" / "make_wheelhouse.sh"), str(wh), sys.executable],
                          capture_output=True, text=True, timeout=1800, env=env)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    return wh
