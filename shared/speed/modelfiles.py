"""The files a model is loaded from: their published sizes, and the seconds to read them.

Two facts the roofline model (shared/speed/roofline.py) takes from public files rather than from
parameters x bits per weight:

- `published_size(model, quant)`: the size of a published GGUF file of a catalog model in a
  GGUF type (data/gguf_files.yaml, each with the page, table and row it was read from). Where
  quantizers published files of different sizes (Mixtral Q4_K_M: 26.44 GB from TheBloke,
  28.4 GB from two others) the larger is returned, so a fit holds for either file; the
  description names both. None where no file is recorded: the caller falls back to its
  bits-per-weight estimate.
- `load_seconds(bytes, family, hardware)`: the time to load a model once, bytes read / the
  machine's read rate (data/load_times.yaml: the rate a public load time implies, with its
  source). transformers and bitsandbytes read the fp16 checkpoint (bitsandbytes quantizes
  while loading): `checkpoint_bytes`. None where no rate is recorded for the machine.

"GB" is 1e9 bytes. Errors: a data file that lacks a field raises KeyError naming it at first
use (the files are the lab's, not the user's input).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import yaml

from shared.models import catalog
from shared.machine import DATA

GGUF_FILES = DATA / "gguf_files.yaml"
LOAD_TIMES = DATA / "load_times.yaml"
GB = 1e9


@dataclasses.dataclass(frozen=True)
class PublishedFile:
    """One published GGUF file: its model (catalog name), type, size (GB) and where it was read."""
    model: str
    type: str
    gb: float
    quantizer: str
    file: str
    source: str


@functools.cache
def published_files(path: Path = GGUF_FILES) -> tuple[PublishedFile, ...]:
    """Every file of data/gguf_files.yaml, its source key replaced by the source's text."""
    data = yaml.safe_load(Path(path).read_text())
    sources = data["sources"]
    return tuple(PublishedFile(model=model, type=f["type"], gb=float(f["gb"]), quantizer=f["quantizer"],
                               file=f["file"], source=sources[f["source"]])
                 for model, files in data["models"].items() for f in files)


def _catalog_file(model: str) -> str | None:
    """The GGUF file name a catalog entry downloads (source `file:`), or None."""
    spec = catalog.catalog().get(model)
    if spec is None or spec.format != "gguf":
        return None
    return spec.source.get("file")


def published_size(model: str, quant: str, path: Path = GGUF_FILES) -> tuple[float, str] | None:
    """(bytes, description) of the published GGUF file of `model` in GGUF type `quant`.

    `model`: a candidate's catalog name (its recorded files), or a catalog GGUF entry (the
    recorded file of the same name as the one it downloads). Where several files are
    recorded, the largest; the description lists the others ("the larger used"). None where
    no file is recorded (the caller estimates from bits per weight).
    """
    files = published_files(path)
    hits = [f for f in files if f.model == model and f.type == quant]
    if not hits:
        name = _catalog_file(model)
        hits = [f for f in files if name is not None and f.file == name and f.type == quant]
    if not hits:
        return None
    hits = sorted(hits, key=lambda f: f.gb, reverse=True)
    top = hits[0]
    text = f"file {top.file} {top.gb:g} GB ({top.quantizer})"
    others = [f for f in hits[1:] if f.gb != top.gb]
    if others:
        text += "; " + ", ".join(f"{f.quantizer} {f.gb:g} GB" for f in others) + ": the larger used"
    return top.gb * GB, text


def checkpoint_bytes(family: str, params_total_b: float, weight_bytes: float) -> float:
    """Bytes a runtime reads to load a model: the GGUF file (`weight_bytes`) for llama.cpp;
    for transformers and bitsandbytes the fp16 checkpoint, 2 bytes a parameter (bitsandbytes
    quantizes while loading; the seed's Mixtral checkpoint is 93 GB for 46.7 B parameters),
    or the resident bytes where they exceed it (an fp32 model)."""
    if family == "llama.cpp":
        return weight_bytes
    return max(params_total_b * 1e9 * 2, weight_bytes)


@dataclasses.dataclass(frozen=True)
class LoadRate:
    """A machine's read rate (GB/s) and the public observation it comes from."""
    key: str
    machines: tuple[str, ...]
    gb: float
    seconds: float
    what: str
    families: tuple[str, ...]
    source: str

    @property
    def read_gb_s(self) -> float:
        return self.gb / self.seconds


@functools.cache
def load_rates(path: Path = LOAD_TIMES) -> dict[str, LoadRate]:
    data = yaml.safe_load(Path(path).read_text())
    return {key: LoadRate(key=key, machines=tuple(r["machines"]), gb=float(r["gb"]), seconds=float(r["seconds"]),
                          what=r["what"], families=tuple(r["families"]), source=r["source"])
            for key, r in data["rates"].items()}


def load_checks(path: Path = LOAD_TIMES) -> list[dict]:
    """The other public load times (data/load_times.yaml `checks`) the size / rate model must reproduce."""
    return list(yaml.safe_load(Path(path).read_text()).get("checks", []))


def rate_for(hardware_label: str, path: Path = LOAD_TIMES) -> LoadRate | None:
    """The read rate recorded for a machine (a hardware.yaml label), or None."""
    for rate in load_rates(path).values():
        if hardware_label in rate.machines:
            return rate
    return None


def load_seconds(read_bytes: float, family: str, hardware_label: str,
                 path: Path = LOAD_TIMES) -> tuple[float | None, str]:
    """(seconds to load once, how it was obtained) for `read_bytes` read by runtime `family`
    on `hardware_label`: read_bytes / the machine's recorded read rate. The text says whether
    the rate was measured with this runtime or is extrapolated to it ("uncalibrated"). (None,
    reason) where the machine has no recorded rate: no load time is subtracted then."""
    rate = rate_for(hardware_label, path)
    if rate is None:
        return None, f"no public load time for {hardware_label} (data/load_times.yaml): load not counted"
    seconds = read_bytes / GB / rate.read_gb_s
    basis = (f"{read_bytes / GB:.1f} GB / {rate.read_gb_s:.3f} GB/s ({rate.key}: {rate.gb:g} GB in "
             f"{rate.seconds:g} s, {rate.what})")
    if family in rate.families:
        return seconds, f"1 public row: {basis}"
    return seconds, f"uncalibrated for {family}: {basis}"
