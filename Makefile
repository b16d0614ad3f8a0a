# Arclight developer entry points. Each target is a thin wrapper over a script in hack/.
.PHONY: demo sweep-demo demo-clean test verify unit cluster cluster-down images crds python

demo:            ## bring up a local cluster, install the operator, train math-solver and deploy it
	bash hack/demo.sh

sweep-demo:      ## after `make demo`: a real four-trial Sweep, its best trial promoted and asked
	bash hack/sweep-demo.sh

demo-clean:      ## remove what `make demo` installed
	bash hack/demo.sh clean

test:            ## install what the suite needs and run every test (unit, controller, trainer, e2e)
	bash hack/test.sh

verify:          ## layering (import-linter), lint (ruff), types (mypy), CRD drift: seconds, no cluster
	bash hack/verify.sh

unit:            ## fast tests only, no cluster
	bash hack/setup-python.sh && .venv/bin/python -m pytest -m unit

cluster:         ## start the full local cluster (cached build)
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down

images:          ## build the operator and trainer images and load them into the cluster
	bash hack/images.sh all

crds:            ## regenerate crds/ from the pydantic models
	.venv/bin/python hack/gen-crds.py && .venv/bin/python hack/sync-chart-crds.py

python:          ## create .venv (3.11) and .venv-agl (3.12)
	bash hack/setup-python.sh
