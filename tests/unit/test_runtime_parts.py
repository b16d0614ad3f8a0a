"""Settings from the environment and the report channel reader."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from arclight.framework.settings import SettingsError, from_env
from arclight.training.reports import status_from_report

pytestmark = pytest.mark.unit


def test_settings_defaults_and_env():
    assert from_env({}).trainer_image == "docker.io/arclight/trainer:dev"
    settings = from_env({"ARCLIGHT_TRAINER_IMAGE": "r.example/t:1",
                         "ARCLIGHT_WORKERS": "4", "ARCLIGHT_METRICS_PORT": "9100",
                         "ARCLIGHT_WATCH_NAMESPACES": "a, b",
                         "ARCLIGHT_ARTIFACTS_CLAIM": "artifacts"})
    assert settings.trainer_image == "r.example/t:1"
    assert settings.workers == 4 and settings.watch_namespaces == ("a", "b")
    assert settings.metrics_port == 9100 and settings.artifacts_claim == "artifacts"


@pytest.mark.parametrize(("env", "named"), [
    ({"ARCLIGHT_METRICS_PORT": "http"}, "ARCLIGHT_METRICS_PORT"),
    ({"ARCLIGHT_MLFLOW_URI": "mlflow:5000"}, "ARCLIGHT_MLFLOW_URI"),
    ({"ARCLIGHT_ARTIFACTS_CLAIM": "Bad_Claim"}, "ARCLIGHT_ARTIFACTS_CLAIM"),
    ({"ARCLIGHT_WORKERS": "0"}, "ARCLIGHT_WORKERS"),
])
def test_bad_settings_fail_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        from_env(env)


def test_report_to_status():
    data = {"progress": json.dumps({"step": 3, "totalSteps": 8, "epoch": 0, "etaSeconds": 12,
                                    "updatedAt": "2024-01-01T00:00:00Z"}),
            "metrics": json.dumps({"reward": {"mean": 0.25, "min": 0, "max": 1, "std": 0.1},
                                   "successRate": 0.5, "unknown": 1}),
            "bestCheckpoint": json.dumps({"step": 2, "uri": "pvc://a/b/step-2",
                                          "metric": "validationReward", "value": 0.4})}
    status = status_from_report(data)
    assert status["progress"]["percent"] == 37 and status["progress"]["step"] == 3
    assert status["metrics"] == {"reward": {"mean": 0.25, "min": 0.0, "max": 1.0, "std": 0.1},
                                 "successRate": 0.5}
    assert status["bestCheckpoint"]["uri"] == "pvc://a/b/step-2"


def test_broken_report_documents_are_skipped():
    status = status_from_report({"progress": "{not json", "bestCheckpoint": '{"step": 1}',
                                 "metrics": '{"loss": 2.5}'})
    assert status == {"metrics": {"loss": 2.5}}


def test_a_bad_setting_stops_the_operator_with_one_message(tmp_path):
    """`kopf run` with a bad ARCLIGHT_* value exits 2 naming it, without a traceback."""
    repo = Path(__file__).resolve().parents[2]
    kopf = Path(sys.executable).with_name("kopf")
    env = {**os.environ, "ARCLIGHT_WORKERS": "0", "PYTHONPATH": str(repo),
           "KUBECONFIG": str(tmp_path / "none")}
    done = subprocess.run([str(kopf), "run", "-m", "controllers", "--standalone",
                           "--all-namespaces"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "ARCLIGHT_WORKERS" in done.stderr and "Traceback" not in done.stderr
