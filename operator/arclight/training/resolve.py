"""Magic train: turn a TrainingRun spec with `auto` values into concrete settings (pure).

`resolve` returns the `status.resolved` document and the TrainerConfig of one attempt
(docs/architecture.md); it reads nothing but its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse

from arclight.api import trainer as contract
from arclight.api.trainer import TrainerConfig
from arclight.api.trainingrun import Resolved, TrainingRunSpec
from arclight.training import catalog

ARTIFACTS_MOUNT = "/artifacts"
CREDENTIALS_DIR = "/var/run/arclight/dataset-credentials"
SEED = 42
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class ResolveError(ValueError):
    """The spec cannot be resolved; the message names the field to change."""


class PlatformFacts(Protocol):
    """What resolution needs to know about the platform (satisfied by `arclight.settings`)."""

    @property
    def mlflow_uri(self) -> str | None: ...


class Resolution(NamedTuple):
    """`status.resolved` (camelCase JSON) and the TrainerConfig of the attempt."""

    resolved: dict[str, Any]
    trainer_config: TrainerConfig


def resolve(
    spec: TrainingRunSpec | dict[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    attempt: int,
    settings: PlatformFacts,
) -> Resolution:
    """Resolve every `auto` of `spec` for attempt `attempt` of run `namespace/name`."""
    spec = TrainingRunSpec.model_validate(spec)
    template = catalog.TEMPLATES.get(spec.template) if spec.template else None
    backend = "cpu" if spec.resources.gpu.type == "none" else "verl"
    dataset = _dataset(spec, template)
    adapter = "lora" if spec.model.adapter == "auto" else spec.model.adapter
    algorithm = _algorithm(spec, backend)
    hyperparameters = _hyperparameters(spec, template, algorithm, adapter, backend, dataset)
    resources = _resources(spec, backend)
    rollouts = _rollouts(spec, backend)
    checkpoint = _checkpoint(spec, hyperparameters["maxSteps"], name, namespace)
    resolved = Resolved.model_validate(
        {
            "template": spec.template,
            "taskType": template.task_type if template else "custom",
            "dataset": dataset,
            "model": {"base": _model_base(spec), "adapter": adapter},
            "algorithm": algorithm,
            "backend": backend,
            "hyperparameters": hyperparameters,
            "resources": resources,
            "rollouts": rollouts,
            "checkpoint": checkpoint,
            "evaluation": {"everySteps": spec.evaluation.every_steps},
        }
    ).model_dump(by_alias=True, mode="json")
    config = _trainer_config(spec, resolved, template, name, namespace, uid, attempt, settings)
    return Resolution(resolved, config)


def _dataset(spec: TrainingRunSpec, template: catalog.TemplateInfo | None) -> dict[str, Any]:
    uri = spec.dataset.uri or f"sample://{spec.template}"
    try:
        parsed = urlparse(uri)
    except ValueError as exc:
        raise ResolveError(f"spec.dataset.uri: {uri!r} is not a valid URI ({exc})") from None
    size = None
    guessed: str | None
    if parsed.scheme == "sample":
        sample = catalog.TEMPLATES.get(parsed.netloc)
        if sample is None:
            raise ResolveError(
                f"spec.dataset.uri: no sample dataset {parsed.netloc!r}; use sample://TEMPLATE"
            )
        size, guessed = sample.sample_rows, sample.sample_format
    else:
        suffix = "." + parsed.path.rsplit(".", 1)[-1].lower() if "." in parsed.path else ""
        guessed = EXTENSION_FORMATS.get(suffix)
    data_format = guessed if spec.dataset.format == "auto" else spec.dataset.format
    if data_format is None:
        raise ResolveError(
            f"spec.dataset.format: cannot tell the format of {uri} from its extension; "
            "set dataset.format to csv, json, jsonl or parquet"
        )
    return {
        "uri": uri,
        "format": data_format,
        "size": size,
        "validationFraction": spec.dataset.validation_fraction,
    }


def _model_base(spec: TrainingRunSpec) -> str:
    return catalog.DEFAULT_MODEL if spec.model.base == "auto" else spec.model.base


def _algorithm(spec: TrainingRunSpec, backend: str) -> str:
    """The requested algorithm, or grpo (every template's reward is computed from the task);
    an algorithm the backend does not implement is refused here, naming the field."""
    algorithm = "grpo" if spec.algorithm == "auto" else spec.algorithm
    supported = catalog.BACKEND_ALGORITHMS[backend]
    if algorithm not in supported:
        elsewhere = [b for b, algos in catalog.BACKEND_ALGORITHMS.items() if algorithm in algos]
        hint = (f"; {algorithm} needs a GPU (spec.resources.gpu)" if elsewhere
                else "; no trainer backend implements it yet")
        raise ResolveError(f"spec.algorithm: {algorithm} is not supported by the {backend} "
                           f"backend (it runs {', '.join(supported)}){hint}")
    return algorithm


def _train_rows(size: int, validation_fraction: str) -> int:
    """Rows left for training after the validation split (at least one each when possible)."""
    held_out = round(size * float(validation_fraction))
    if float(validation_fraction) > 0:
        held_out = max(1, held_out)
    return max(1, size - held_out)


def _hyperparameters(
    spec: TrainingRunSpec,
    template: catalog.TemplateInfo | None,
    algorithm: str,
    adapter: str,
    backend: str,
    dataset: dict[str, Any],
) -> dict[str, Any]:
    asked = spec.hyperparameters
    defaults = catalog.ALGORITHMS[algorithm]
    gpu = spec.resources.gpu

    def pick(value: Any, default: Any) -> Any:
        return default if value == "auto" else value

    if backend == "cpu":
        auto_batch = catalog.CPU_BATCH_SIZE
    else:
        auto_batch = catalog.GPU_BATCH_SIZE[gpu.type] * gpu.effective_count * spec.resources.nodes
    size = dataset["size"]
    train_rows = None if size is None else _train_rows(size, dataset["validationFraction"])
    if train_rows is not None:
        auto_batch = min(auto_batch, train_rows)
    batch_size = pick(asked.batch_size, auto_batch)
    epochs = None if asked.epochs == "auto" else asked.epochs
    max_steps = None if asked.max_steps == "auto" else asked.max_steps
    if max_steps is None and train_rows is not None:
        epoch_steps = math.ceil(train_rows / batch_size)
        max_steps = epoch_steps * (epochs or 1)
        if epochs is None and backend == "cpu":
            max_steps = min(max_steps, catalog.CPU_MAX_STEPS)
    if max_steps is None and epochs is None:
        max_steps = catalog.UNKNOWN_SIZE_STEPS[backend]
    early = asked.early_stopping
    return {
        "learningRate": pick(asked.learning_rate, defaults.learning_rates[adapter]),
        "batchSize": batch_size,
        "groupSize": defaults.group_size,
        "maxSteps": max_steps,
        "epochs": epochs,
        "gradientAccumulation": pick(
            asked.gradient_accumulation, catalog.COMMON_HYPERPARAMETERS["gradientAccumulation"]
        ),
        "scheduler": pick(asked.scheduler, defaults.scheduler),
        "optimizer": pick(asked.optimizer, catalog.COMMON_HYPERPARAMETERS["optimizer"]),
        "warmupSteps": pick(asked.warmup_steps, defaults.warmup_steps),
        "klCoef": pick(asked.kl_coef, defaults.kl_coef),
        "clipRange": defaults.clip_range,
        "rewardScale": pick(asked.reward_scale, catalog.COMMON_HYPERPARAMETERS["rewardScale"]),
        "rewardClip": pick(asked.reward_clip, catalog.COMMON_HYPERPARAMETERS["rewardClip"]),
        "earlyStopping": early.model_dump(by_alias=True) if early else None,
        "maxNewTokens": template.max_new_tokens if template else 128,
        "temperature": defaults.temperature,
    }


def _resources(spec: TrainingRunSpec, backend: str) -> dict[str, Any]:
    gpu = spec.resources.gpu
    if backend == "cpu":
        cpu, memory = catalog.CPU_RESOURCES["cpu"], catalog.CPU_RESOURCES["memory"]
    else:
        per_gpu = catalog.GPU_RESOURCES_PER_GPU
        cpu = str(per_gpu["cpu"] * gpu.effective_count)
        memory = f"{per_gpu['memoryGi'] * gpu.effective_count}Gi"
    return {
        "gpu": {"type": gpu.type, "count": gpu.effective_count},
        "cpu": str(spec.resources.cpu) if spec.resources.cpu is not None else cpu,
        "memory": str(spec.resources.memory) if spec.resources.memory is not None else memory,
        "nodes": spec.resources.nodes,
    }


def _rollouts(spec: TrainingRunSpec, backend: str) -> dict[str, Any]:
    defaults = catalog.ROLLOUTS[backend]
    asked = spec.rollouts
    if backend != "cpu":
        # verl runs its own rollout loop: neither field reaches it yet (refused, not ignored)
        if "retries" in asked.model_fields_set:
            raise ResolveError("spec.rollouts.retries: only the CPU backend retries rollouts "
                               "yet; remove it for a GPU run")
        if spec.evaluation.every_steps:
            raise ResolveError("spec.evaluation.everySteps: only the CPU backend evaluates "
                               "during training yet; remove it for a GPU run")
    return {
        "workers": defaults["workers"] if asked.workers == "auto" else asked.workers,
        "concurrency": defaults["concurrency"]
        if asked.concurrency == "auto"
        else asked.concurrency,
        "timeoutSeconds": asked.timeout_seconds,
        "retries": asked.retries,
    }


def _checkpoint(
    spec: TrainingRunSpec, max_steps: int | None, name: str, namespace: str
) -> dict[str, Any]:
    asked = spec.checkpoint
    if asked.every_steps != "auto":
        every = asked.every_steps
    else:
        every = max(1, max_steps // 2) if max_steps else 50
    path = ""
    if asked.uri:
        path = urlparse(asked.uri).path.strip("/")
    directory = f"{ARTIFACTS_MOUNT}/{path or f'{namespace}/{name}'}"
    return {"everySteps": every, "keep": asked.keep, "dir": directory}


def _reward(spec: TrainingRunSpec, template: catalog.TemplateInfo | None) -> dict[str, Any]:
    if spec.reward.components:
        return {"components": [c.model_dump(by_alias=True) for c in spec.reward.components]}
    if template is not None:
        return {"components": [dict(c) for c in template.default_reward]}
    if spec.agent is not None and spec.agent.reward:
        return {"components": [{"name": "custom", "weight": "1", "params": {}}]}
    return {"components": [dict(c) for c in catalog.GENERIC_REWARD]}


def _tracking(spec: TrainingRunSpec, namespace: str, settings: PlatformFacts) -> dict[str, Any]:
    uri = getattr(settings, "mlflow_uri", None)
    if not uri:
        return {"mlflow": None}
    asked = spec.tracking.mlflow
    return {
        "mlflow": {
            "trackingUri": uri,
            "experiment": (asked.experiment if asked else None) or namespace,
            "registeredModel": asked.registered_model if asked else None,
        }
    }


def _trainer_config(
    spec: TrainingRunSpec,
    resolved: dict[str, Any],
    template: catalog.TemplateInfo | None,
    name: str,
    namespace: str,
    uid: str,
    attempt: int,
    settings: PlatformFacts,
) -> TrainerConfig:
    dataset = resolved["dataset"]
    agent = None
    if spec.agent is not None:
        agent = contract.CustomAgent(
            image=spec.agent.image,
            entrypoint=spec.agent.entrypoint,
            reward=spec.agent.reward,
            env=[env.model_dump(by_alias=True, exclude_none=True) for env in spec.agent.env],
        )
    return TrainerConfig(
        run=contract.RunRef(name=name, namespace=namespace, uid=uid, attempt=attempt),
        template=spec.template,
        task_type=resolved["taskType"],
        agent=agent,
        dataset=contract.DatasetSpec(
            uri=dataset["uri"],
            format=dataset["format"],
            validation_fraction=dataset["validationFraction"],
            credentials_dir=CREDENTIALS_DIR if spec.dataset.secret_ref else None,
        ),
        model=contract.ModelSpec.model_validate(resolved["model"]),
        algorithm=resolved["algorithm"],
        backend=resolved["backend"],
        hyperparameters=contract.Hyperparameters.model_validate(resolved["hyperparameters"]),
        reward=contract.RewardSpec.model_validate(_reward(spec, template)),
        resources=contract.Resources(
            gpu=contract.GpuSpec.model_validate(resolved["resources"]["gpu"]),
            nodes=resolved["resources"]["nodes"],
        ),
        rollouts=contract.Rollouts.model_validate(resolved["rollouts"]),
        checkpoint=contract.Checkpoint.model_validate(resolved["checkpoint"]),
        evaluation=contract.Evaluation.model_validate(resolved["evaluation"]),
        resume_from=None,
        tracking=contract.Tracking.model_validate(_tracking(spec, namespace, settings)),
        report=contract.ReportTarget(config_map=f"{name}-report", namespace=namespace),
        seed=SEED,
    )


def with_fixes(
    config: TrainerConfig, fixes: Mapping[str, Any], resume_from: str | None = None
) -> TrainerConfig:
    """`config` with the hyperparameter overrides `fixes` (camelCase, as
    `diagnosis.auto_fix` writes them) and, when given, `resumeFrom`; validated again."""
    hyperparameters = contract.Hyperparameters.model_validate(
        {**config.hyperparameters.model_dump(by_alias=True), **fixes}
    )
    update: dict[str, Any] = {"hyperparameters": hyperparameters}
    if resume_from:
        update["resume_from"] = resume_from
    return config.model_copy(update=update)
