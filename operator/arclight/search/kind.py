"""The Sweep kind as the framework sees it: its trials (TrainingRuns) and references."""
from __future__ import annotations

from arclight.api import sweep as api
from arclight.api.common import GROUP, VERSION
from arclight.core.plan import ChildKind, Kind
from arclight.search.plan import on_error, plan, references
from arclight.search.validation import validate_sweep

#: Trials are never pruned by the frame: finished trials stay until the Sweep goes.
CHILDREN = (ChildKind(GROUP, VERSION, "TrainingRun", "trainingruns", prune=False),)
WATCHES = (ChildKind(GROUP, VERSION, "ModelDeployment", "modeldeployments", prune=False),
           ChildKind(GROUP, VERSION, "Sweep", "sweeps", prune=False))

SWEEP = Kind(group=GROUP, version=VERSION, kind=api.KIND, plural=api.PLURAL, namespaced=True,
             children=CHILDREN, parse=validate_sweep, plan=plan, on_error=on_error,
             references=references, watches=WATCHES)
