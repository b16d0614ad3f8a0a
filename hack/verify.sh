#!/usr/bin/env bash
# `make verify`: the static checks `make test` runs first. Each prints what it found.
#   import-linter  the layers api <- core <- clients <- rooms <- framework <- controllers, and
#                  the pure rooms (no kubernetes, kopf, psycopg, mlflow, clients, framework)
#   ruff           lint of the whole tree
#   mypy           types of the operator library and controllers (pydantic plugin)
#   gen-crds       the CRDs in crds/ and the chart match the pydantic models
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-python.sh >/dev/null
status=0
run() { printf '== %s\n' "$1"; shift; "$@" || status=1; }
run "import-linter" .venv/bin/lint-imports
run "ruff" .venv/bin/ruff check operator controllers tests hack trainer-image
run "mypy" .venv/bin/mypy
run "CRD drift" .venv/bin/python hack/gen-crds.py --check
exit "$status"
