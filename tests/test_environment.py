"""The install files agree, and the catalog is well formed."""
import re
import tomllib

import yaml

from shared.models import catalog
from shared.machine import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


BUILT_BY_SCRIPT = "llama-cpp-python"  # scripts/install_llama_cpp.sh builds it for both


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    project = [r for r in project if _name(r) != BUILT_BY_SCRIPT]
    text = (REPO / "environment.yml").read_text()
    env = yaml.safe_load(text)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(map(_name, project)) == sorted(map(_name, pip))
    assert sorted(project) == sorted(pip), "same names but different version bounds"
    assert "scripts/install_llama_cpp.sh" in text, "conda users must be told how llama.cpp is built"


def test_catalog_has_the_seed_candidates_and_the_embedded_models():
    entries = catalog.catalog()
    for name in ["smollm2-135m-instruct", "gemma-3-270m", "phi-2", "gemma-2b-it", "gemma-7b-it",
                 "llama-2-7b-chat", "llama-2-13b-chat", "mistral-7b-instruct-v0.2",
                 "mixtral-8x7b-instruct-v0.1"]:
        assert name in entries
    for spec in entries.values():
        assert spec.format in ("hf", "gguf")
        assert set(spec.source) & {"embedded", "embedded_parts", "hub", "path"}
        assert spec.context_length and spec.params_b


def test_embedded_models_resolve_to_checked_gguf_files():
    for name in ["smollm2-135m-instruct", "gemma-3-270m"]:
        spec = catalog.get(name)
        path = catalog.resolve(spec)
        assert path.suffix == ".gguf" and path.stat().st_size > 50e6
        assert catalog.sha256_file(path) == spec.sha256
