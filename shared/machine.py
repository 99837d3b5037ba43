"""Who measured: the machine, the library versions and the code version, for every result row.

llama-bench and optimum-benchmark put this on each row so that rows from different boxes can be
merged into one table (a GPU user's rows add columns to the speed table, they do not overwrite).

Each row also names the checkout that measured it (`checkout`, an id kept in the ignored file
`.checkout-id` at the repository root, made on first use): the rows a clone receives with the
repository were measured elsewhere, so a fresh clone's main job measures again instead of
skipping them (results.done_configs), while a rerun in the same checkout skips its own rows.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"   # the lab's facts as YAML: models, hardware, sources
CHECKOUT_FILE = ".checkout-id"  # in .gitignore: never committed, so never shared by two clones
LIBRARIES = ("torch", "transformers", "accelerate", "bitsandbytes", "llama_cpp_python", "gguf",
             "sentence-transformers")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask (taskset, a container's
    cpuset, a scheduler's allotment), not os.cpu_count(), which counts every CPU of the box.
    Every default thread count of the lab is this number: more threads than usable CPUs take
    turns on them, and llama.cpp's spinning threads then decode slower than one thread."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity call (macOS, Windows)
        return os.cpu_count() or 1


def cpu_isa(flags: str | None = None) -> str:
    """The widest x86 vector extension the CPU advertises: "AVX-512" (avx512f), "AVX2" or
    "below AVX2" (from /proc/cpuinfo's flags, or `flags`); "" where there are none (not x86).
    Two CPUs of one marketing name ("AMD EPYC") differ here, and so do llama.cpp's kernels and
    speeds on them (the rows committed on 2026-11-29 came from an AVX-512 EPYC, this lab's
    2026-12-02 machine is an AVX2 one)."""
    if flags is None:
        try:
            flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("flags")), "")
        except OSError:
            flags = ""
    words = set(flags.split())
    if "avx512f" in words:
        return "AVX-512"
    if "avx2" in words:
        return "AVX2"
    return "below AVX2" if "sse2" in words else ""


def row_isa(row) -> str:
    """A result row's CPU vector extension: its `cpu_isa`, or for rows written before that field
    existed, what its `llama_cpp_build` string (llama_print_system_info) says."""
    isa = row.get("cpu_isa")
    if isinstance(isa, str) and isa:
        return isa
    build = str(row.get("llama_cpp_build") or "")
    return "AVX-512" if "AVX512 = 1" in build else "AVX2" if "AVX2 = 1" in build else ""


def gpu_names() -> list[str]:
    """Names of the visible CUDA devices; empty without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def git_commit() -> str:
    """Short commit of the repository, with '+dirty' when the tree has uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               text=True, capture_output=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def llama_cpp_build() -> str:
    """The llama.cpp build's CPU features, as `llama_print_system_info()` prints them
    ("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | ..."), so a number can be traced to the build
    that made it; empty without llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError:
        return ""
    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def llama_cpp_cmake_args() -> str:
    """The CMake arguments scripts/install_llama_cpp.sh built the installed llama-cpp-python
    with (recorded in the environment's prefix); empty for a build made another way."""
    path = Path(sys.prefix) / ".llama_cpp_build_args"
    return path.read_text().strip() if path.exists() else ""


def shown(path: str | Path) -> Path:
    """`path` relative to the repository when it is inside it, else as it is: what outputs
    print, so that a committed executed notebook does not carry this machine's folders."""
    path = Path(path)
    absolute = path if path.is_absolute() else Path.cwd() / path
    return absolute.relative_to(REPO) if absolute.is_relative_to(REPO) else path


def checkout_id(repo: Path = REPO) -> str:
    """This checkout's id: 8 hex digits kept in `repo`/.checkout-id, made (uuid4) on first call.
    Two processes making it at once agree: the first link wins, the other reads it."""
    path = Path(repo) / CHECKOUT_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    tmp = path.with_name(f"{CHECKOUT_FILE}.{os.getpid()}")
    tmp.write_text(uuid.uuid4().hex[:8] + "\n")
    try:
        os.link(tmp, path)  # atomic, fails when another process made it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.cache
def _static_info() -> dict:
    gpus = gpu_names()
    cpu = cpu_model()
    usable = usable_cpus()
    cores = f"{os.cpu_count()} cores" + (f", {usable} usable" if usable != os.cpu_count() else "")
    info = {
        "machine": (f"{len(gpus)}x{gpus[0]}" if len(gpus) > 1 else gpus[0]) if gpus
                   else f"CPU {cpu} ({cores})",  # a run limited to fewer CPUs is another machine
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "gpus": ", ".join(gpus),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "checkout": checkout_id(),
        "llama_cpp_build": llama_cpp_build(),
        "llama_cpp_cmake_args": llama_cpp_cmake_args(),
    }
    info.update({f"{name.replace('-', '_')}_version": version(name) for name in LIBRARIES})
    return info


_adopted: dict | None = None


def adopt(static: dict) -> None:
    """Use `static` (another process's info() without its timestamp) as this process's: a child
    that measures for its parent on the same machine skips probing again (which imports torch
    for the GPU list and llama_cpp for its build). shared/run/experiment.py's children call it."""
    global _adopted
    _adopted = dict(static)


def static_info() -> dict:
    """Machine, versions and commit: computed once per process (or adopted from the parent), the
    same for every row a configuration writes; a copy."""
    return dict(_adopted if _adopted is not None else _static_info())


def info() -> dict:
    """static_info() plus the current UTC time."""
    return {**static_info(), "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def machine_label(machine: str) -> str:
    """A short, scannable name for a row's `machine`: "CPU AMD EPYC (2 cores)" -> "AMD EPYC 2c",
    "CPU Intel(R) Xeon(R) Processor (2 cores)" -> "Xeon 2c", "2xTesla T4" -> "2xT4",
    "NVIDIA H200" -> "H200", "NVIDIA GeForce RTX 3090" -> "RTX 3090"."""
    m = re.fullmatch(r"CPU (.*?) \((\d+) cores\)", str(machine))
    if m:
        name = re.sub(r"\((R|TM|tm)\)|\bCPU\b|\bProcessor\b|@.*|\d+-Core", " ", m[1])
        name = re.sub(r"\bIntel\b\s*(?=Xeon|Core)", "", name)
        return f"{' '.join(name.split())} {m[2]}c"
    count, _, name = re.fullmatch(r"(?:(\d+)x)?(.*)", str(machine)).group(1, 0, 2)
    name = re.sub(r"\b(NVIDIA|GeForce|Tesla)\b|-(PCIE|SXM\d?)-\d+GB|\s+\d+GB (HBM\w*|PCIe)", " ", name)
    name = " ".join(name.split())
    return f"{count}x{name}" if count else name
