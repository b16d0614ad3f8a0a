"""An OpenAI-compatible chat-completions server around the in-process torch policy.

It answers vLLM-style (`prompt_token_ids`, per-choice `token_ids` and `logprobs`) so that
agl-server can proxy it and record training triplets. Concurrent requests are generated
together in micro-batches; the trainer updates the same model object between steps and
holds `lock` while it does.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict

BATCH_GAP_S = 0.1
"""A batch keeps collecting while requests arrive less than this apart..."""
BATCH_WAIT_S = 1.0
"""...for at most this long after its first request (rollout processes start staggered)."""
EXPECT_POLL_S = 0.01
"""With an expectation set, how often the batcher looks whether it changed."""
MAX_BATCH = 16
"""Generations batched together by default (the trainer passes its rollout concurrency)."""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    logprobs: bool = False
    return_token_ids: bool = False


@dataclass
class _Job:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    future: Future = field(default_factory=Future)

    @property
    def wanted(self) -> bool:
        """False once the caller gave up (a disconnected or timed-out rollout)."""
        return not self.future.cancelled()


async def _disconnected(request: Request) -> None:
    """Return once the HTTP client has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class PolicyUnhealthy(RuntimeError):
    """The policy produced non-finite logits (diverged weights)."""


class PolicyServer:
    """Serve `model` on 127.0.0.1 at a free port; `base_url` ends in `/v1`."""

    def __init__(self, model, tokenizer, *, model_name: str, default_max_tokens: int = 64,
                 seed: int = 0, max_batch: int = MAX_BATCH) -> None:
        self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        self.max_batch = max_batch
        self.default_max_tokens = default_max_tokens
        self.lock = threading.RLock()
        self.unhealthy: str | None = None
        self.generated_tokens = 0
        self.batches: list[tuple[int, float]] = []
        """Each generation: how many requests it served and how long it took (seconds)."""
        self._generator = torch.Generator().manual_seed(seed)
        self.expected = 0
        """How many callers are live (0: unknown); see `expect`."""
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="policy-batcher", daemon=True)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> FastAPI:
        """The FastAPI application (chat completions, models, health)."""
        app = FastAPI(title="arclight policy server")

        @app.get("/health")
        async def health() -> dict:
            return {"status": "unhealthy" if self.unhealthy else "ok"}

        @app.get("/v1/models")
        async def models() -> dict:
            return {"object": "list", "data": [{"id": self.model_name, "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: ChatRequest, http: Request) -> Response:
            return await self._complete(request, http)

        return app

    def expect(self, callers: int) -> None:
        """`callers` rollouts are live (0: unknown). A batch then starts as soon as it holds a
        request of each, instead of when requests stop arriving for BATCH_GAP_S: rollouts
        that reach the model through the gateway and forked processes arrive spread out,
        and a batch cut short costs a whole second generation for the rest."""
        self.expected = max(0, int(callers))

    def submit(self, prompt_ids: list[int], max_tokens: int, temperature: float) -> Future:
        """Queue one generation for the micro-batcher; cancel the future to drop it."""
        job = _Job(prompt_ids, int(max_tokens), temperature)
        self._jobs.put(job)
        return job.future

    def chat(self, messages: list[dict], *, max_tokens: int, temperature: float) -> str:
        """In-process chat turn through the same batcher (a template `Chat`, no HTTP)."""
        ids, _, _ = self.submit(self.encode(messages), max_tokens, temperature).result()
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    async def _complete(self, request: ChatRequest, http: Request) -> Response:
        prompt_ids = self.encode(request.messages)
        max_tokens = request.max_completion_tokens or request.max_tokens or self.default_max_tokens
        temperature = 1.0 if request.temperature is None else float(request.temperature)
        future = self.submit(prompt_ids, int(max_tokens), temperature)
        answer = asyncio.ensure_future(asyncio.wrap_future(future))
        gone = asyncio.ensure_future(_disconnected(http))
        try:
            await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                # The caller went away (a killed or timed-out rollout): drop the queued job.
                future.cancel()
                return Response(status_code=499)
            token_ids, logprobs, finish = answer.result()
        except PolicyUnhealthy as exc:
            # 400: the gateway does not retry it; the trainer reads `unhealthy`.
            raise HTTPException(status_code=400, detail=str(exc)) from None
        finally:
            for task in (answer, gone):
                task.cancel()
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        choice: dict = {"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": finish}
        body: dict = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                      "created": int(time.time()), "model": self.model_name, "choices": [choice],
                      "usage": {"prompt_tokens": len(prompt_ids),
                                "completion_tokens": len(token_ids),
                                "total_tokens": len(prompt_ids) + len(token_ids)}}
        if request.return_token_ids:
            body["prompt_token_ids"] = prompt_ids
            choice["token_ids"] = token_ids
        if request.logprobs:
            choice["logprobs"] = {"content": [
                {"token": self.tokenizer.convert_ids_to_tokens(t), "logprob": lp,
                 "bytes": None, "top_logprobs": []} for t, lp in zip(token_ids, logprobs)]}
        return body

    def encode(self, messages: list[dict]) -> list[int]:
        """Token ids of the chat prompt, generation prompt included."""
        clean = [{"role": m.get("role", "user"), "content": str(m.get("content") or "")}
                 for m in messages]
        encoded = self.tokenizer.apply_chat_template(clean, add_generation_prompt=True,
                                                     tokenize=True)
        ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(
            encoded, "keys") else encoded
        return [int(t) for t in ids]

    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = self._collect(first)
            groups: dict[float, list[_Job]] = {}
            for job in batch:
                if job.wanted:
                    groups.setdefault(job.temperature, []).append(job)
            for temperature, jobs in groups.items():
                started = time.monotonic()
                try:
                    results = self.generate([j.prompt_ids for j in jobs],
                                            max(j.max_tokens for j in jobs), temperature)
                except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                    for job in jobs:
                        if job.future.set_running_or_notify_cancel():
                            job.future.set_exception(exc)
                    continue
                self.batches.append((len(jobs), time.monotonic() - started))
                for job, (ids, lps, finish) in zip(jobs, results):
                    if len(ids) > job.max_tokens:
                        ids, lps, finish = ids[:job.max_tokens], lps[:job.max_tokens], "length"
                    if job.future.set_running_or_notify_cancel():
                        job.future.set_result((ids, lps, finish))

    def _collect(self, first: _Job) -> list[_Job]:
        """The batch that starts with `first`: up to `max_batch` requests, until one from each
        expected caller is in, else until requests stop coming for BATCH_GAP_S; never longer
        than BATCH_WAIT_S."""
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT_S
        quiet_since = time.monotonic()
        while len(batch) < self.max_batch:
            now = time.monotonic()
            if self.expected and len(batch) >= self.expected:
                break
            if now >= deadline or (not self.expected and now - quiet_since >= BATCH_GAP_S):
                break
            if self.expected:
                wait = min(deadline - now, EXPECT_POLL_S)
            else:
                wait = min(deadline, quiet_since + BATCH_GAP_S) - now
            try:
                job = self._jobs.get(timeout=max(wait, 0.001))
            except queue.Empty:
                continue
            if job is None:
                self._jobs.put(None)
                break
            batch.append(job)
            quiet_since = time.monotonic()
        return batch

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], max_tokens: int,
                 temperature: float) -> list[tuple[list[int], list[float], str]]:
        """Sample (temperature > 0) or greedily decode continuations of left-padded prompts.

        Returns per prompt: response token ids (EOS included), their log-probs under the
        sampling distribution, and the finish reason.
        """
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        greedy = temperature <= 0
        with self.lock:
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                do_sample=not greedy, temperature=None if greedy else temperature,
                top_k=0 if not greedy else None, top_p=1.0 if not greedy else None,
                eos_token_id=eos, pad_token_id=pad, output_logits=True,
                return_dict_in_generate=True)
        sequences = out.sequences[:, width:]
        # One step at a time: stacking [batch, steps, vocab] logits and their log-softmax would
        # hold three more copies of the largest tensor of a generation.
        chosen = torch.empty(sequences.shape, dtype=torch.float32)
        rows = torch.arange(len(prompts))
        for t, step_logits in enumerate(out.logits):
            step_logits = step_logits.float()
            if not torch.isfinite(step_logits).all():
                self.unhealthy = "the policy produced non-finite logits"
                raise PolicyUnhealthy(self.unhealthy)
            if not greedy:
                step_logits = step_logits / temperature
            token = sequences[:, t]
            chosen[:, t] = step_logits[rows, token] - torch.logsumexp(step_logits, dim=-1)
        del out
        results = []
        for row in range(len(prompts)):
            ids = sequences[row].tolist()
            finish = "length"
            if eos in ids:
                ids = ids[:ids.index(eos) + 1]
                finish = "stop"
            results.append((ids, chosen[row, :len(ids)].tolist(), finish))
            self.generated_tokens += len(ids)
        return results

    def start(self, timeout: float = 30.0) -> None:
        """Start the batching worker and the HTTP server; return once it answers."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False,
                                timeout_keep_alive=120)
        self._server = uvicorn.Server(config)
        self._worker.start()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="policy-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("policy server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the HTTP server and the worker."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._jobs.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout=10)
