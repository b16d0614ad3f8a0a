"""Checks of a Sweep the CRD schema cannot express; failures become an ``InvalidSpec``
condition naming the field."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arclight.api.sweep import SweepSpec
from arclight.core.errors import InvalidSpec, parse_spec
from arclight.core.names import MAX_NAME_LENGTH
from arclight.search.params import check_parameters
from arclight.search.trials import SUFFIX_LENGTH


def validate_sweep(sweep: Mapping[str, Any]) -> SweepSpec:
    """The validated spec; InvalidSpec naming the first bad field. Every parameter's values
    (each choice, both bounds) are set into the template and the result validated, so a path
    or value the TrainingRun spec refuses is named before any trial exists."""
    spec = parse_spec(sweep, SweepSpec, MAX_NAME_LENGTH - SUFFIX_LENGTH)
    template = spec.training_run_template
    if template.deploy.enabled:
        raise InvalidSpec("spec.trainingRunTemplate.deploy.enabled: trials do not deploy "
                          "themselves; set spec.promote.modelDeployment to serve the best trial.")
    if template.ttl_seconds_after_finished is not None:
        raise InvalidSpec("spec.trainingRunTemplate.ttlSecondsAfterFinished: a trial is the "
                          "search's record and stays until the Sweep is deleted; remove it.")
    if template.suspend:
        raise InvalidSpec("spec.trainingRunTemplate.suspend: trials of a suspended template "
                          "never run; remove it (the Sweep starts parallelism trials at once).")
    if spec.early_stopping.algorithm != "none" and template.evaluation.every_steps == 0:
        raise InvalidSpec("spec.trainingRunTemplate.evaluation.everySteps: early stopping "
                          f"({spec.early_stopping.algorithm}) judges trials on their evaluations "
                          "during training; set everySteps (e.g. 1) or earlyStopping.algorithm "
                          "none.")
    try:
        check_parameters(template, spec.parameters)
    except ValueError as exc:
        raise InvalidSpec(f"spec.{exc}") from None
    return spec
