#!/usr/bin/env bash
# The project's test command (README: `make test`). On a fresh Debian machine it installs what the
# suite needs (apt packages, Python environments), brings up the local cluster (cached build),
# builds and loads the images, then runs unit, controller, trainer and e2e tests.
#   ARCLIGHT_TEST_SELECT="unit"   run a subset (a pytest -m expression); default: everything but bench
#   KUBECONFIG=...                run against an existing cluster instead of the local one
set -euo pipefail
cd "$(dirname "$0")/.."
select="${ARCLIGHT_TEST_SELECT:-not bench}"
t0=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }

step "install system packages"; bash hack/install-deps.sh
step "python environments";     bash hack/setup-python.sh
step "verify (layers, lint, types, CRD drift)"; bash hack/verify.sh
load_flag="--no-load"
if [ -z "${KUBECONFIG:-}" ]; then
  load_flag=""
  step "local cluster";         bash hack/cluster.sh up
  KUBECONFIG="$(bash hack/cluster.sh kubeconfig)"; export KUBECONFIG
  # The tests install and run their own operators: the demo's must not act beside them.
  step "remove the demo's operator, if any"; bash hack/demo.sh clean
fi
# An existing cluster (KUBECONFIG set) gets no local load: make the images pullable there
# (`kind load docker-archive ~/.cache/arclight/images/<name>-<hash>.tar`, or a registry).
step "images";                  bash hack/images.sh all ${load_flag:-}
step "tests ($select)"
.venv/bin/python -m pytest -m "$select" "$@"
step "done"
