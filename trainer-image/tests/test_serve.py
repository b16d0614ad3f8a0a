"""The model server (`python -m arclight_trainer.serve`) on loopback with a real checkpoint:
SmolLM2-135M-Instruct saved `from_pretrained`-style from the bundled GGUF."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from arclight_trainer.modeling import resolve_model_dir

pytestmark = pytest.mark.unit
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server on a free loopback port, serving the checkpoint directory."""
    model_dir = resolve_model_dir("smollm2-135m-instruct")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arclight_trainer.serve", "--model", str(model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--name", "demo"],
            stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if get(f"{base}/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server not healthy in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def chat(base: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/v1/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        assert resp.status == 200
        return json.load(resp)


def test_answers_a_chat_completion(server):
    body = chat(server, {"model": "demo", "temperature": 0, "max_tokens": 8,
                         "messages": [{"role": "user", "content": "What is 2 + 3?"}]})
    assert body["object"] == "chat.completion" and body["model"] == "demo"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert 1 <= body["usage"]["completion_tokens"] <= 8
    assert body["usage"]["prompt_tokens"] > 5


def test_greedy_answers_are_repeatable_and_counted(server):
    request = {"temperature": 0, "max_tokens": 6,
               "messages": [{"role": "user", "content": "Name a colour."}]}
    first, second = chat(server, request), chat(server, request)
    assert first["choices"][0]["message"] == second["choices"][0]["message"]
    status, stats = get(f"{server}/v1/stats")
    assert status == 200
    stats = json.loads(stats)
    assert stats["requests"] >= 2 and stats["inFlight"] == 0 and stats["generatedTokens"] > 0
    assert json.loads(get(f"{server}/v1/models")[1])["data"][0]["id"] == "demo"


def test_refuses_a_directory_without_a_model(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "arclight_trainer.serve", "--model",
                             str(tmp_path), "--port", str(free_port())],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no config.json" in result.stderr
