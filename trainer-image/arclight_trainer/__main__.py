"""`python -m arclight_trainer run --config FILE [--report-file F]`: one training run.

Starts the whole topology (gateway, rollout runner, policy server, trainer), prints a
progress line per step and finally
`validation reward before=X after=Y seed=S model=PATH`. Classified failures, and SIGTERM
(after a checkpoint, exit Preempted), write the termination JSON and exit with their code
(docs/architecture.md).
"""

from __future__ import annotations

import os

# Busy-waiting OpenMP threads starve the rollout subprocesses on small CPU nodes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import tempfile
from pathlib import Path

from arclight.api.trainer import ExitCode, FailureReason, TrainerConfig, decimal_value

from .config import ConfigError, load_config, reward_components
from .failures import TrainerFailure, is_out_of_memory, write_termination
from .metrics import TrainerMetrics
from .report import Reporter, make_reporter, training_result


def prepare_data(config: TrainerConfig):
    """The template and the validated train/validation split (DatasetInvalid on bad data)."""
    from .datasets import load_dataset, split
    from .templates import get_template
    from .templates.base import DatasetError

    if config.agent is not None or config.template is None:
        raise TrainerFailure(FailureReason.CONFIG_INVALID, "custom agents (spec.agent) need their own image "
                             "and are not run by the built-in trainer", [
                                 "Use spec.template, or run the custom agent image."])
    template = get_template(config.template)
    try:
        dataset = load_dataset(config.dataset.uri, config.dataset.format,
                               credentials_dir=config.dataset.credentials_dir,
                               template=template)
        train, val = split(dataset, decimal_value(config.dataset.validation_fraction),
                           config.seed)
    except DatasetError as exc:
        raise TrainerFailure(FailureReason.DATASET_INVALID, str(exc), [exc.fix] if exc.fix else []) from exc
    if not train or not val:
        raise TrainerFailure(FailureReason.DATASET_INVALID, f"dataset {config.dataset.uri} has "
                             f"{len(dataset.items)} rows: too few for a train/validation split",
                             ["Add rows or change dataset.validationFraction."])
    return template, train, val


def run(config: TrainerConfig, reporter: Reporter, metrics: TrainerMetrics,
        workdir: Path) -> int:
    """Run training end to end; return the process exit code."""
    from .backends import check_algorithm, get_backend
    from .backends.base import RunContext

    tracker = None
    try:
        check_algorithm(config.backend, config.algorithm)
        template, train, val = prepare_data(config)
        print(f"run {config.run.namespace}/{config.run.name}: template={template.name} "
              f"train={len(train)} validation={len(val)} backend={config.backend} "
              f"seed={config.seed}", flush=True)
        if config.tracking.mlflow:
            from .tracking import Tracker, flat_params

            spec = config.tracking.mlflow
            tracker = Tracker(spec.tracking_uri, spec.experiment,
                              f"{config.run.name}-{config.run.attempt}", spec.registered_model)
            tracker.log_params(flat_params(config))
        ctx = RunContext(config=config, template=template, train_items=train, val_items=val,
                         components=reward_components(config, template.default_reward),
                         reporter=reporter, metrics=metrics, tracker=tracker, workdir=workdir)
        try:
            outcome = get_backend(config.backend).run(ctx)
        except TrainerFailure:
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                raise TrainerFailure(FailureReason.OUT_OF_MEMORY, f"allocation failed: {exc}"[:500], [
                    "Halve hyperparameters.batchSize and double gradientAccumulation.",
                    "Lower maxNewTokens or request more memory."]) from exc
            raise
        model_uri = outcome.model_dir.resolve().as_uri()
        if tracker:
            tracker.log_metrics({"validation_reward_before": outcome.validation_before,
                                 "validation_reward_after": outcome.validation_after},
                                outcome.steps)
            model_uri = tracker.log_model(outcome.model_dir)
            tracker.finish()
        reporter.update(result=training_result(outcome.validation_before,
                                               outcome.validation_after, model_uri))
        print(f"validation reward before={outcome.validation_before:.4f} "
              f"after={outcome.validation_after:.4f} seed={config.seed} "
              f"model={outcome.model_dir}", flush=True)
        return ExitCode.SUCCEEDED
    except TrainerFailure as failure:
        write_termination(failure)
        if tracker:
            tracker.finish("KILLED" if failure.reason is FailureReason.PREEMPTED else "FAILED")
        return failure.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arclight_trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="run one training run from a TrainerConfig")
    run_cmd.add_argument("--config", required=True, help="the TrainerConfig JSON file")
    run_cmd.add_argument("--report-file", help="write report documents here (outside a cluster)")
    run_cmd.add_argument("--metrics-port", type=int,
                         default=int(os.environ.get("ARCLIGHT_METRICS_PORT", "9090")),
                         help="Prometheus port (0: off)")
    run_cmd.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        failure = TrainerFailure(FailureReason.CONFIG_INVALID, str(exc),
                                 ["Fix the TrainingRun spec."])
        write_termination(failure)
        return failure.exit_code
    reporter = make_reporter(args.report_file, config.report and config.report.config_map,
                             config.report and config.report.namespace)
    metrics = TrainerMetrics()
    metrics.serve(args.metrics_port)
    try:
        if args.workdir:
            return run(config, reporter, metrics, Path(args.workdir))
        with tempfile.TemporaryDirectory(prefix="arclight-") as tmp:
            return run(config, reporter, metrics, Path(tmp))
    finally:
        metrics.close()


if __name__ == "__main__":
    sys.exit(main())
