"""`python -m arclight_trainer.serve --model DIR|models:/NAME@ALIAS --port 8080`: serve a model.

An OpenAI-compatible endpoint for a trained agent model (runtime `transformers`): the
trainer's policy server (`/v1/chat/completions`, `/v1/models`, micro-batched generation)
bound to all interfaces, plus `/healthz` for readiness probes and `/v1/stats` (requests
in flight, for concurrency autoscaling). A model trained with a template (its directory
holds `arclight-agent.json`) also answers as that agent: `POST /v1/agent/run` (agent_route).
The model is loaded before the port opens, so a pod turns ready only once it can answer.
"""

from __future__ import annotations

import os

# Busy-waiting OpenMP threads starve the HTTP loop on small CPU nodes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request, Response
from transformers import AutoModelForCausalLM, AutoTokenizer

from .agent_descriptor import read_agent_descriptor
from .agent_route import PATH as AGENT_PATH
from .agent_route import AgentRunner, add_agent_route
from .policy_server import PolicyServer

MLFLOW_SCHEMES = ("models:/", "runs:/")
RUNTIMES = ("transformers",)
COUNTED_PATHS = frozenset({"/v1/chat/completions", AGENT_PATH})


def fetch_model(model: str, download_dir: Path) -> Path:
    """A local `from_pretrained` directory for `model`: a path, `file://` URI or MLflow URI."""
    if model.startswith(MLFLOW_SCHEMES):
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model,
                                                        dst_path=str(download_dir)))
    path = Path(model.removeprefix("file://"))
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{model} is not a model directory (no config.json)")
    return path


def load_model(directory: Path) -> tuple[object, object]:
    """The model (float32, eval mode) and its tokenizer, with a pad token."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    return model, tokenizer


class ModelServer(PolicyServer):
    """The policy server as a standalone model endpoint on a given host and port.

    `agent` is the model's agent descriptor (`{"template", "reward"}`), if it has one.
    """

    def __init__(self, model, tokenizer, *, model_name: str, default_max_tokens: int = 256,
                 seed: int = 0, agent: dict | None = None) -> None:
        super().__init__(model, tokenizer, model_name=model_name,
                         default_max_tokens=default_max_tokens, seed=seed)
        self.in_flight = 0
        self.requests = 0
        self.agent = AgentRunner(agent, self.chat, default_max_tokens) if agent else None

    def app(self) -> FastAPI:
        """The policy server's routes plus `/healthz`, `/v1/stats` and `/v1/agent/run`."""
        app = super().app()
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "path", None) != "/v1/models"]

        @app.get("/v1/models")
        async def models() -> dict:
            card: dict = {"id": self.model_name, "object": "model"}
            if self.agent is not None:
                card["arclight"] = {"template": self.agent.template.name}
            return {"object": "list", "data": [card]}

        add_agent_route(app, self.agent)

        @app.middleware("http")
        async def count(request: Request, call_next):
            if request.url.path not in COUNTED_PATHS:
                return await call_next(request)
            self.in_flight += 1
            self.requests += 1
            try:
                return await call_next(request)
            finally:
                self.in_flight -= 1

        @app.get("/healthz")
        async def healthz() -> Response:
            if self.unhealthy:
                return Response(self.unhealthy, status_code=503)
            return Response("ok")

        @app.get("/v1/stats")
        async def stats() -> dict:
            return {"inFlight": self.in_flight, "requests": self.requests,
                    "generatedTokens": self.generated_tokens}

        return app

    def serve(self, host: str, port: int) -> None:
        """Serve until interrupted (SIGTERM/SIGINT stop uvicorn gracefully)."""
        self._worker.start()
        try:
            uvicorn.Server(uvicorn.Config(self.app(), host=host, port=port,
                                          log_level="info", access_log=False,
                                          timeout_keep_alive=120)).run()
        finally:
            self._jobs.put(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arclight_trainer.serve")
    parser.add_argument("--model", required=True,
                        help="model directory, file:// URI, or MLflow models:/ or runs:/ URI")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--name", default="model", help="the model id clients send")
    parser.add_argument("--runtime", default="transformers", choices=RUNTIMES)
    parser.add_argument("--max-tokens", type=int, default=256,
                        help="completion length when a request sets none")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arclight-serve-") as tmp:
        directory = fetch_model(args.model, Path(tmp))
        agent = read_agent_descriptor(directory)
        model, tokenizer = load_model(directory)
        server = ModelServer(model, tokenizer, model_name=args.name,
                             default_max_tokens=args.max_tokens, agent=agent)
        role = f" (agent {agent['template']})" if agent else ""
        print(f"serving {args.model} as {args.name}{role} on {args.host}:{args.port}",
              flush=True)
        server.serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
