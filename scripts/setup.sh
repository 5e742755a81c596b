#!/usr/bin/env bash
# Brings a fresh Debian 12 machine to a working kvopt build: Debian packages,
# the Python packages of the reference tests, the embedded default model and
# the evaluation text of `kvopt eval`.
# Idempotent; prints nothing when everything is already there.
set -euo pipefail

apt_packages=(
  cmake ninja-build ccache g++ python3
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  clang-22 libclang-rt-22-dev clang-format-22
  libprotobuf-dev protobuf-compiler libonnx-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev libcpp-httplib-dev
)
# onnx_ir: onnxruntime's 4-bit weight quantizer, for the peer benchmark.
pip_packages=(numpy onnx onnxruntime onnx_ir safetensors tokenizers gguf sentencepiece)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
missing=()
for p in "${pip_packages[@]}"; do
  "$python" -c "import $p" 2>/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Python packages: ${missing[*]}"
  "$python" -m pip install -q --disable-pip-version-check "${missing[@]}"
fi

"$(dirname "$0")/fetch-default-model.sh"
"$python" "$(dirname "$0")/fetch-eval-text.py"
