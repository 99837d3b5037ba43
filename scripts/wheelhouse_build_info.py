"""What a wheelhouse was built for, written at build time and checked before an offline install.

Copied into every wheelhouse as `build_info.py` (standard library only: it runs before anything
is installed, on Kaggle's Python too):

    python build_info.py write WHEELHOUSE --python 3.12 --cmake-args "..."   # make_wheelhouse.sh
    python build_info.py check [WHEELHOUSE]                                  # install.sh

`write` records in WHEELHOUSE/BUILD.json: the Python the wheels were downloaded for, the
llama-cpp-python wheel's version, CMake arguments, the CPU features its llama.cpp was compiled
with (`llama_print_system_info()`, as x86 /proc/cpuinfo flags), the CUDA architectures when it
is a CUDA build, and the newest glibc symbol version its shared libraries need.

`check` exits 2 with one line per problem, each saying what to do, when the running Python
cannot install one of the wheels (its tags against pip's own `sys_tags()`: the wheels of
another Python), the CPU lacks a feature llama.cpp was compiled with (it would die with SIGILL
at the first call), or the C library is older than the one the build linked against.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

INFO = "BUILD.json"
# llama_print_system_info()'s names (ggml's x86 features) -> the /proc/cpuinfo flag of each
CPU_FLAGS = {"SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c",
             "FMA": "fma", "BMI2": "bmi2", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f",
             "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
             "AMX_INT8": "amx_int8"}


def wheel_tags(name: str) -> set[str]:
    """The `py-abi-platform` tags a wheel file name declares (PEP 427; dotted parts expand)."""
    parts = name[:-len(".whl")].split("-")
    py, abi, plat = parts[-3:]
    return {f"{p}-{a}-{q}" for p in py.split(".") for a in abi.split(".") for q in plat.split(".")}


def glibc_needed(files) -> str | None:
    """The newest GLIBC_x.y symbol version the shared libraries among `files` (paths) need."""
    versions = set()
    for f in files:
        versions |= {(int(a), int(b)) for a, b in re.findall(rb"GLIBC_(\d+)\.(\d+)", Path(f).read_bytes())}
    return ".".join(map(str, max(versions))) if versions else None


def llama_features(wheel: Path) -> tuple[list[str], str, str | None]:
    """(cpuinfo flags llama.cpp was compiled with, the system info line, the glibc its libraries
    need) of a llama-cpp-python wheel, read by loading it from a temporary folder with this
    Python (nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": tmp})
        if out.returncode != 0:
            raise SystemExit(f"cannot load {wheel.name} here to read its CPU features: {out.stderr[-800:]}")
        info = out.stdout.strip().splitlines()[-1]
        glibc = glibc_needed(p for p in Path(tmp).rglob("*.so*") if p.is_file())
    flags = sorted({CPU_FLAGS[k] for k, v in re.findall(r"(\w+) = (\d+)", info) if k in CPU_FLAGS and v == "1"})
    return flags, info, glibc


def write(wheelhouse: Path, python: str, cmake_args: str) -> dict:
    """Write BUILD.json for the wheels in `wheelhouse`; returns what it wrote."""
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    llama = [w for w in wheels if w.startswith("llama_cpp_python-")]
    if len(llama) != 1:
        raise SystemExit(f"{wheelhouse}: expected one llama_cpp_python wheel, found {llama}")
    flags, info, glibc = llama_features(wheelhouse / llama[0])
    cuda = re.search(r"CMAKE_CUDA_ARCHITECTURES=([\w;]+)", cmake_args)
    build = {"python": python, "wheels": wheels,
             "llama_cpp": {"wheel": llama[0], "cmake_args": cmake_args, "cpu_flags": flags,
                           "system_info": info, "glibc": glibc,
                           "cuda_architectures": cuda.group(1).split(";") if cuda else None,
                           "built_on": {"python": platform.python_version(),
                                        "glibc": "-".join(platform.libc_ver())}}}
    (wheelhouse / INFO).write_text(json.dumps(build, indent=1) + "\n")
    return build


def problems(wheelhouse: Path, cpuinfo: str | None = None) -> list[str]:
    """Why the wheels of `wheelhouse` would not install or run with this Python on this machine."""
    try:
        build = json.loads((wheelhouse / INFO).read_text())
    except (OSError, ValueError) as e:
        return [f"{wheelhouse / INFO} is missing or unreadable ({e}): make the wheelhouse again (make kaggle)"]
    found = []
    try:
        from pip._vendor.packaging.tags import sys_tags
        mine = {str(t) for t in sys_tags()}
        foreign = [w for w in build["wheels"] if not wheel_tags(w) & mine]
    except ImportError:  # a pip without vendored packaging: compare the recorded Python
        foreign = [] if platform.python_version().startswith(build["python"] + ".") else build["wheels"]
    if foreign:
        names = [w.split("-")[0] for w in foreign]
        found.append(f"this Python ({platform.python_version()}, {sys.executable}) cannot install "
                     f"{len(foreign)} of the {len(build['wheels'])} wheels ({', '.join(names[:4])}"
                     f"{', ...' if len(names) > 4 else ''}): the wheelhouse is for Python "
                     f"{build['python']}. Make it for this one: make kaggle KAGGLE_PYTHON="
                     f"{'.'.join(platform.python_version_tuple()[:2])}")
    llama = build["llama_cpp"]
    if cpuinfo is None:
        try:
            cpuinfo = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
        except OSError:
            cpuinfo = ""
    have = set(cpuinfo.split(":", 1)[-1].split())
    missing = [f for f in llama["cpu_flags"] if f not in have]
    if missing and have:
        found.append(f"this CPU lacks {', '.join(missing)}, which {llama['wheel']} was compiled with "
                     f"(CMake arguments: {llama['cmake_args']}); llama.cpp would die with SIGILL. "
                     "Build it portable: make kaggle (its default -DGGML_NATIVE=OFF), or add "
                     "-DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF for a CPU without AVX2")
    libc, version = platform.libc_ver()
    if llama.get("glibc") and libc == "glibc" and _older(version, llama["glibc"]):
        found.append(f"this glibc {version} is older than {llama['glibc']}, which {llama['wheel']} "
                     f"needs (built on {llama['built_on']['glibc']}): build it on an older system, "
                     "or on Kaggle itself (kaggle/build_gpu_wheels.ipynb)")
    return found


def _older(a: str, b: str) -> bool:
    return tuple(map(int, a.split("."))) < tuple(map(int, b.split(".")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="record the build in WHEELHOUSE/BUILD.json")
    w.add_argument("wheelhouse", type=Path)
    w.add_argument("--python", required=True, help="the Python the wheels are for (3.12)")
    w.add_argument("--cmake-args", required=True, help="llama-cpp-python's CMake arguments")
    c = sub.add_parser("check", help="can this Python on this machine install and run the wheels?")
    c.add_argument("wheelhouse", type=Path, nargs="?", default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    if args.command == "write":
        build = write(args.wheelhouse, args.python, args.cmake_args)
        print(f"BUILD.json: Python {build['python']}, llama.cpp CPU flags {' '.join(build['llama_cpp']['cpu_flags'])}, "
              f"glibc >= {build['llama_cpp']['glibc']}")
        return 0
    found = problems(args.wheelhouse)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main())
