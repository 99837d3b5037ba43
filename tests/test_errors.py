"""Bad input gets a clear error before any compute."""
import dataclasses
import shutil

import pytest

from shared.models import catalog, loading, timing
from shared.errors import ContextTooLongError, LabError, ModelFileError, UnknownModelError
from shared.errors import UnsupportedQuantizationError


def test_unknown_model_lists_the_catalog():
    with pytest.raises(UnknownModelError) as e:
        loading.load("gpt-5-mini")
    assert "smollm2-135m-instruct" in str(e.value) and "mistral-7b-instruct-v0.2" in str(e.value)


def test_corrupt_gguf_is_refused(tmp_path):
    spec = catalog.get("smollm2-135m-instruct")
    bad = tmp_path / "smol.gguf"
    shutil.copyfile(catalog.resolve(spec), bad)
    with open(bad, "r+b") as f:  # flip bytes in the middle of the weights
        f.seek(50_000_000)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelFileError, match="corrupt"):
        catalog.resolve(dataclasses.replace(spec, source={"path": str(bad)}))


def test_missing_gguf_is_refused(tmp_path):
    spec = dataclasses.replace(catalog.get("smollm2-135m-instruct"),
                               source={"path": str(tmp_path / "gone.gguf")})
    with pytest.raises(ModelFileError, match="missing"):
        catalog.resolve(spec)


@pytest.mark.parametrize("model,backend,quantization,match", [
    ("smollm2-135m-instruct", "llama_cpp", "8bit", "cannot apply"),
    ("smollm2-135m-instruct", "transformers", "3bit", "none, 8bit, 4bit"),
    ("phi-2", "llama_cpp", "none", "needs a GGUF file"),
])
def test_quantization_the_backend_cannot_do(model, backend, quantization, match):
    with pytest.raises(UnsupportedQuantizationError, match=match):
        loading.load(model, backend, quantization)


def test_unknown_backend():
    with pytest.raises(LabError, match="transformers, llama_cpp, vllm"):
        loading.load("smollm2-135m-instruct", "exllama")


@pytest.mark.parametrize("fixture", ["smol_hf", "smol_llama"])
def test_prompt_longer_than_the_context(fixture, request):
    lm = request.getfixturevalue(fixture)
    ids = timing.filler_ids(lm, lm.context_length)
    with pytest.raises(ContextTooLongError, match="exceeds the context"):
        timing.generate(lm, input_ids=ids, max_new_tokens=8)


def test_base_model_refuses_chat_messages(gemma_llama):
    with pytest.raises(LabError, match="chat template"):
        gemma_llama.encode(messages=[{"role": "user", "content": "hi"}])
