"""Tracking against a real `mlflow server` (sqlite backend, temporary artifact store)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from trainer_configs import base_config


@pytest.fixture
def mlflow_server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "mlflow.log", "wb")  # noqa: SIM115 (closed after the server)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "mlartifacts")],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # at most ~120 s
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'mlflow.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start in time")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_params_metrics_and_model_are_tracked(run_trainer, tmp_path, mlflow_server):
    config = base_config(
        tmp_path, run={"name": "tracked", "namespace": "test", "attempt": 1},
        hyperparameters={"learningRate": "1e-4", "batchSize": 1, "groupSize": 2, "maxSteps": 2,
                         "maxNewTokens": 8, "klCoef": "0.02"},
        tracking={"mlflow": {"trackingUri": mlflow_server, "experiment": "arclight-test",
                             "registeredModel": "math-agent"}})
    run = run_trainer(config, timeout=400)
    assert run.returncode == 0, run.output[-3000:]

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("arclight-test")
    [tracked] = client.search_runs([experiment.experiment_id])
    assert tracked.info.run_name == "tracked-1" and tracked.info.status == "FINISHED"
    params = tracked.data.params
    assert params["template"] == "math-solver"
    assert params["hyperparameters.learningRate"] == "1e-4"
    assert params["hyperparameters.groupSize"] == "2"
    history = client.get_metric_history(tracked.info.run_id, "reward_mean")
    assert sorted(m.step for m in history) == [1, 2]
    assert "validation_reward_after" in tracked.data.metrics
    files = {Path(a.path).name for a in client.list_artifacts(tracked.info.run_id, "model")}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    [version] = client.search_model_versions("name='math-agent'")
    assert version.run_id == tracked.info.run_id
    assert run.report["result"]["modelUri"] == f"models:/math-agent/{version.version}"
