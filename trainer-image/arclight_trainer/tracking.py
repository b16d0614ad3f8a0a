"""MLflow tracking: params, per-step metrics, the model artifact and optional registration."""

from __future__ import annotations

from pathlib import Path

from arclight.api.trainer import TrainerConfig


def flat_params(config: TrainerConfig) -> dict[str, str]:
    """The run's parameters as flat MLflow params (`hyperparameters.learningRate` ...)."""
    params = {"template": config.template or "", "taskType": config.task_type or "",
              "algorithm": config.algorithm, "backend": config.backend,
              "model.base": config.model.base, "model.adapter": config.model.adapter,
              "dataset.uri": config.dataset.uri, "seed": str(config.seed)}
    for key, value in config.hyperparameters.model_dump(by_alias=True).items():
        params[f"hyperparameters.{key}"] = str(value)
    for component in config.reward.components:
        params[f"reward.{component.name}.weight"] = component.weight
    return params


class Tracker:
    """One MLflow run for one training attempt."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str,
                 registered_model: str | None = None) -> None:
        import mlflow

        self.mlflow = mlflow
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self.registered_model = registered_model
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.tracking_uri = tracking_uri

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in params.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), stamp, step) for k, v in metrics.items() if v is not None])

    def log_model(self, model_dir: Path) -> str:
        """Upload the merged model dir as artifact `model`; register it when asked.

        Returns the model's URI (`models:/NAME/VERSION` when registered, else `runs:/ID/model`).
        """
        self.client.log_artifacts(self.run_id, str(model_dir), artifact_path="model")
        uri = f"runs:/{self.run_id}/model"
        if self.registered_model:
            try:
                self.client.create_registered_model(self.registered_model)
            except self.mlflow.exceptions.MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
            source = f"{self.client.get_run(self.run_id).info.artifact_uri}/model"
            version = self.client.create_model_version(self.registered_model, source,
                                                       run_id=self.run_id)
            uri = f"models:/{self.registered_model}/{version.version}"
        return uri

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
