"""Shared fixtures: the real embedded models, loaded once per test session."""
import pytest

from shared import loading

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma-3-270m"


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)


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
