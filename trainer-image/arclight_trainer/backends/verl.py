"""The GPU backend: Agent Lightning's verl trainer (vLLM rollouts, FSDP updates).

`build_verl_config` maps a TrainerConfig onto verl's `ppo_trainer` config plus the
`agentlightning` section (pure, unit-tested). `VerlBackend.run` starts the gateway and
runs `agentlightning.verl.entrypoint.run_ppo` under the Agent Lightning interpreter; it is
only usable in the GPU image and is never imported on the CPU path.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from arclight.api.trainer import FailureReason, TrainerConfig, decimal_value

from ..failures import TrainerFailure
from ..rollouts import AGENT_CLASS
from .base import Backend, RunContext, RunOutcome

LAUNCHER = """
import json, sys
from omegaconf import OmegaConf
from agentlightning.verl.entrypoint import run_ppo
spec = json.load(open(sys.argv[1]))
base = OmegaConf.load(sys.argv[2])
config = OmegaConf.merge(base, OmegaConf.create(spec["config"]))
run_ppo(config, spec["train"], spec["val"])
"""


def build_verl_config(config: TrainerConfig, *, model_path: str, agl_url: str,
                      output_dir: str) -> dict:
    """verl/Hydra overrides for this run (GRPO advantages, KL loss, LoRA when asked)."""
    hp = config.hyperparameters
    gpus = max(1, config.resources.gpu.count)
    lora = config.model.adapter == "lora"
    logger = ["console"] + (["mlflow"] if config.tracking.mlflow else [])
    return {
        "algorithm": {"adv_estimator": "grpo" if config.algorithm == "grpo" else "gae",
                      "use_kl_in_reward": False},
        "data": {"train_batch_size": hp.batch_size, "max_prompt_length": 2048,
                 "max_response_length": hp.max_new_tokens, "seed": config.seed},
        "actor_rollout_ref": {
            "model": {"path": model_path, "lora_rank": 32 if lora else 0,
                      "lora_alpha": 32 if lora else 16, "target_modules": "all-linear"},
            "actor": {"optim": {"lr": decimal_value(hp.learning_rate),
                                "lr_warmup_steps": hp.warmup_steps,
                                "warmup_style": "constant" if hp.scheduler == "constant"
                                else "cosine"},
                      "ppo_mini_batch_size": max(1, hp.batch_size // hp.gradient_accumulation),
                      "use_kl_loss": decimal_value(hp.kl_coef) > 0,
                      "kl_loss_coef": decimal_value(hp.kl_coef),
                      "clip_ratio": decimal_value(hp.clip_range)},
            "rollout": {"name": "vllm", "n": hp.group_size,
                        "temperature": decimal_value(hp.temperature)},
        },
        "trainer": {"total_training_steps": hp.max_steps, "total_epochs": hp.epochs or 1,
                    "n_gpus_per_node": gpus, "nnodes": config.resources.nodes,
                    "save_freq": config.checkpoint.every_steps or -1,
                    "max_actor_ckpt_to_keep": config.checkpoint.keep,
                    "default_local_dir": output_dir, "logger": logger,
                    "project_name": config.tracking.mlflow.experiment
                    if config.tracking.mlflow else "arclight",
                    "experiment_name": f"{config.run.name}-{config.run.attempt}",
                    "val_before_train": True},
        "agentlightning": {"agl_base_url": agl_url,
                           "agl_key": "${oc.env:ARCLIGHT_AGL_KEY}",
                           "rollout_timeout_seconds": config.rollouts.timeout_seconds,
                           "local": {"agent_class": AGENT_CLASS,
                                     "env_map": {"ARCLIGHT_TASK": "input"}}},
    }


def rollout_inputs(template: str, items: list[dict], components: list[dict],
                   config: TrainerConfig, prefix: str) -> list[dict]:
    """Dataset rows in the shape `agent_main` reads from the rollout input."""
    hp = config.hyperparameters
    return [{"data_id": f"{prefix}-{i}", "template": template, "item": item,
             "components": components, "maxTokens": hp.max_new_tokens,
             "temperature": decimal_value(hp.temperature)} for i, item in enumerate(items)]


class VerlBackend(Backend):
    name = "verl"

    def run(self, ctx: RunContext) -> RunOutcome:
        from ..modeling import resolve_model_dir
        from ..topology import AglTopology, agl_python

        config = ctx.config
        if config.resources.gpu.count < 1:
            raise TrainerFailure(FailureReason.CONFIG_INVALID,
                                 "backend verl needs resources.gpu.count >= 1",
                                 ["Use backend cpu for CPU-only runs."])
        out = Path(config.checkpoint.dir)
        topology = AglTopology(ctx.workdir / "agl", policy_url="http://127.0.0.1:0/v1",
                               train_temperature=decimal_value(config.hyperparameters.temperature),
                               concurrency=config.rollouts.total,
                               workers=config.rollouts.workers)
        with topology:
            spec = {"config": build_verl_config(config, model_path=str(resolve_model_dir(
                        config.model.base)), agl_url=topology.url, output_dir=str(out)),
                    "train": rollout_inputs(ctx.template.name, ctx.train_items, ctx.components,
                                            config, "train"),
                    "val": rollout_inputs(ctx.template.name, ctx.val_items, ctx.components,
                                          config, "val")}
            spec_file = ctx.workdir / "verl.json"
            spec_file.write_text(json.dumps(spec))
            base = subprocess.run([agl_python(), "-c",
                                   ("import agentlightning.verl, os; print(os.path.join("
                                    "os.path.dirname(agentlightning.verl.__file__), "
                                    "'config.yaml'))")], capture_output=True, text=True,
                                  check=True).stdout.strip()
            done = subprocess.run([agl_python(), "-c", LAUNCHER, str(spec_file), base],
                                  env=topology.env(), check=False)
        if done.returncode != 0:
            raise RuntimeError(f"verl trainer exited with {done.returncode}")
        return RunOutcome(validation_before=float("nan"), validation_after=float("nan"),
                          model_dir=out, steps=config.hyperparameters.max_steps or 0)
