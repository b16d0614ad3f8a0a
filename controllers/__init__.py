"""Kopf handlers, one thin module per kind: ``kopf run -m controllers``."""
from arclight.framework import runtime  # noqa: F401  (registers the startup/cleanup handlers)

from controllers import creditbudget, modeldeployment, sweep, trainingrun  # noqa: F401
