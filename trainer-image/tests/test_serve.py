"""The model server (`python -m arclight_trainer.serve`) on loopback with a real checkpoint:
SmolLM2-135M-Instruct saved `from_pretrained`-style from the bundled GGUF, served bare and,
with an agent descriptor, as the math-solver agent."""
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
from arclight_trainer.agent_descriptor import read_agent_descriptor, write_agent_descriptor
from arclight_trainer.modeling import resolve_model_dir
from arclight_trainer.templates import get_template

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


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server on a free loopback port, serving the checkpoint directory."""
    yield from serve(resolve_model_dir("smollm2-135m-instruct"), tmp_path_factory)


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory):
    """The server on a model directory trained (as far as it says) as the math-solver agent."""
    model_dir = tmp_path_factory.mktemp("agent-model")
    for file in resolve_model_dir("smollm2-135m-instruct").iterdir():
        (model_dir / file.name).symlink_to(file)
    write_agent_descriptor(model_dir, "math-solver", get_template("math-solver").default_reward)
    yield from serve(model_dir, tmp_path_factory)


def serve(model_dir: Path, tmp_path_factory):
    """Run the server on `model_dir`; yield its base URL once healthy, then stop it."""
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


def run_agent(base: str, item: dict, **options) -> tuple[int, dict]:
    return post(f"{base}/v1/agent/run", {"input": item, "maxTokens": 24, **options})


def test_descriptor_round_trips(tmp_path: Path):
    assert read_agent_descriptor(tmp_path) is None
    reward = [{"name": "taskSuccess", "weight": "1", "params": {}}]
    write_agent_descriptor(tmp_path, "math-solver", reward)
    assert read_agent_descriptor(tmp_path) == {"template": "math-solver", "reward": reward}
    (tmp_path / "arclight-agent.json").write_text('{"reward": []}')
    with pytest.raises(ValueError, match="template"):
        read_agent_descriptor(tmp_path)


def test_answers_as_the_trained_agent(agent_server):
    item = {"question": "What is 7 + 5?", "answer": 12}
    status, first = run_agent(agent_server, item)
    assert status == 200, first
    assert first["template"] == "math-solver" and isinstance(first["answer"], str)
    assert 1 <= first["turns"] <= get_template("math-solver").max_turns
    assert first["messages"][1] == {"role": "user", "content": "What is 7 + 5?"}
    assert first["messages"][-1]["role"] == "assistant"
    assert isinstance(first["toolCalls"], list) and first["latencySeconds"] >= 0
    reward = first["reward"]
    assert isinstance(reward["total"], float) and isinstance(reward["success"], bool)
    assert set(reward["components"]) == {"taskSuccess", "format"}
    assert first["rewardError"] is None
    status, second = run_agent(agent_server, item, temperature=0)
    assert status == 200 and second["answer"] == first["answer"]
    assert second["messages"] == first["messages"] and second["reward"] == reward
    stats = json.loads(get(f"{agent_server}/v1/stats")[1])
    assert stats["requests"] >= 2 and stats["inFlight"] == 0
    card = json.loads(get(f"{agent_server}/v1/models")[1])["data"][0]
    assert card["arclight"] == {"template": "math-solver"}


def test_agent_without_expected_answer_is_unscored(agent_server):
    status, body = run_agent(agent_server, {"question": "What is 7 + 5?"})
    assert status == 200, body
    assert isinstance(body["answer"], str) and body["reward"] is None
    assert "answer" in body["rewardError"]


def test_agent_input_without_prompt_column_is_refused(agent_server):
    status, body = run_agent(agent_server, {"answer": 12})
    assert status == 400 and "'question'" in body["detail"]


def test_bare_model_has_no_agent(server):
    status, body = run_agent(server, {"question": "What is 7 + 5?", "answer": 12})
    assert status == 404 and "not trained by Arclight with a template" in body["detail"]
    assert "arclight" not in json.loads(get(f"{server}/v1/models")[1])["data"][0]


def test_a_request_whose_caller_left_is_not_generated(server):
    """A queued request is dropped when its client disconnects (a killed or timed-out rollout)."""
    import threading

    def tokens() -> int:
        return json.loads(get(f"{server}/v1/stats")[1])["generatedTokens"]

    long = {"messages": [{"role": "user", "content": "Count from 1 to 500."}],
            "max_tokens": 160, "temperature": 0}
    answers: list = []
    busy = threading.Thread(target=lambda: answers.append(
        post(f"{server}/v1/chat/completions", long)))
    before = tokens()
    busy.start()
    time.sleep(1.5)  # the long generation is running: the next request waits in the queue
    request = urllib.request.Request(
        f"{server}/v1/chat/completions", headers={"Content-Type": "application/json"},
        data=json.dumps({**long, "max_tokens": 64}).encode())
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(request, timeout=0.5)  # gives up while queued
    busy.join(timeout=120)
    [(status, body)] = answers
    assert status == 200
    # The queue is first in, first out: once a later request is answered, the abandoned one
    # would have been generated too, had it not been dropped.
    status, last = post(f"{server}/v1/chat/completions",
                        {**long, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200
    generated = body["usage"]["completion_tokens"] + last["usage"]["completion_tokens"]
    assert tokens() - before == generated  # nothing generated for the request that left
