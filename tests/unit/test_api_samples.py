"""Every kind ships a sample in crds/samples/ that the models accept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from arclight.api import KIND_MODULES, TrainingRun

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


@pytest.mark.parametrize("module", KIND_MODULES, ids=lambda module: module.KIND)
def test_sample_validates(module):
    document = yaml.safe_load((SAMPLES / f"{module.SINGULAR}.yaml").read_text())
    assert document["kind"] == module.KIND and document["apiVersion"] == "arclight.dev/v1alpha1"
    assert ("namespace" in document["metadata"]) is False
    obj = getattr(module, module.KIND).model_validate(document)
    assert obj.metadata.name == document["metadata"]["name"]
    assert obj.spec.model_dump(by_alias=True, exclude_unset=True) == document["spec"]


def test_training_run_sample_is_small_and_on_cpu():
    run = TrainingRun.model_validate(yaml.safe_load((SAMPLES / "trainingrun.yaml").read_text()))
    assert run.spec.template == "math-solver"
    assert run.spec.resources.gpu.type == "none"
    assert isinstance(run.spec.hyperparameters.max_steps, int)
    assert run.spec.hyperparameters.max_steps <= 8


def test_no_stray_samples():
    assert sorted(path.stem for path in SAMPLES.glob("*.yaml")) == sorted(
        module.SINGULAR for module in KIND_MODULES
    )
