#!/usr/bin/env bash
# Build llama-cpp-python from source for this machine and install it into the given Python.
#
#   scripts/install_llama_cpp.sh [PYTHON]          # PYTHON defaults to `python`
#   LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" scripts/install_llama_cpp.sh .venv/bin/python
#
# The default build keeps the CPU's own vector extensions (-march=native: AVX2, AVX-512, VNNI
# where present) but never AMX: ggml's AMX code faults with SIGILL on Xeon VMs that advertise
# AMX without granting it to llama.cpp's threads (upstream ggml-org/llama.cpp PR #26954). It
# also skips the multimodal library (LLAVA_BUILD), which the lab never loads (a quarter of
# the compile steps). On a CPU without AVX2 add -DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF
# to LLAMA_CMAKE_ARGS.
#
# The wheel is kept in .whl/<key>/, where key hashes the version, the CMake arguments, the
# compiler, the Python and this CPU's flags: a changed configuration or another CPU always
# builds anew (pip's own wheel cache is bypassed), an unchanged one reinstalls in seconds.
#
# For a wheelhouse (scripts/make_wheelhouse.sh): LLAMA_BUILD_ONLY=1 builds (or finds) the wheel
# and prints its path without installing it into PYTHON, and LLAMA_PY_API=py3 tags it
# py3-none-linux_x86_64 (scikit-build-core's wheel.py-api): llama-cpp-python loads libllama
# with ctypes, so one build serves every Python 3 (Kaggle's 3.12 from this machine's 3.11).
set -euo pipefail
PY=${1:-python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
DEFAULT_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
ARGS=${LLAMA_CMAKE_ARGS-$DEFAULT_ARGS}
case "$ARGS" in *-DLLAVA_BUILD*) ;; *) ARGS="-DLLAVA_BUILD=OFF $ARGS" ;; esac
case "$ARGS" in *CMAKE_C_FLAGS*|*CMAKE_CXX_FLAGS*) ;; *) ARGS="$ARGS -DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'" ;; esac

PY_API=${LLAMA_PY_API:-}
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)
key=$(printf '%s\n' "$VERSION" "$ARGS" "$(cc --version 2>/dev/null | head -1)" \
      "$("$PY" -c 'import sys; print(sys.version)')" "$cpu_flags" ${PY_API:+"py-api=$PY_API"} \
      | sha256sum | cut -c1-16)
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.whl/llama-cpp-python-$VERSION-$key"
if ! ls "$dir"/*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $VERSION ($ARGS) into $dir: about 5 minutes on 2 cores"
    start=$(date +%s)
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        ${PY_API:+--config-settings=wheel.py-api=$PY_API} -w "$dir.tmp" "llama-cpp-python==$VERSION"
    printf '%s\n' "$ARGS" > "$dir.tmp/cmake_args.txt"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "built in $(( $(date +%s) - start )) s"
fi
if [ -n "${LLAMA_BUILD_ONLY:-}" ]; then
    echo "wheel: $(ls "$dir"/*.whl)"
    exit 0
fi
prefix=$("$PY" -c 'import sys; print(sys.prefix)')
if [ "$(cat "$prefix/.llama_cpp_build_key" 2>/dev/null)" != "$key" ]; then
    "$PY" -m pip install -q --force-reinstall --no-deps "$dir"/*.whl
    "$PY" -m pip install -q "$dir"/*.whl   # its own dependencies (numpy, jinja2, ...)
    echo "$key" > "$prefix/.llama_cpp_build_key"
    cp "$dir/cmake_args.txt" "$prefix/.llama_cpp_build_args"   # read by shared/machine.py
fi
echo "wheel: $(ls "$dir"/*.whl)"   # read by scripts/make_wheelhouse.sh
"$PY" - <<'PYEOF'
import llama_cpp
info = llama_cpp.llama_print_system_info().decode()
print("llama.cpp build:", info)
if "AMX" in info:
    raise SystemExit("this llama.cpp build has AMX compiled in; rebuild without it (see scripts/install_llama_cpp.sh)")
PYEOF
