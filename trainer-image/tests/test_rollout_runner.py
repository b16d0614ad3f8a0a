"""The forking rollout runner against a real agl-server: claims, results, crashes, timeouts.

Two runner processes serve one gateway; every rollout runs exactly once, in a process of its
own (a fork), and crashed or hung agents end as failed rollouts with the reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from arclight_trainer.rollouts import RolloutClient, Task
from arclight_trainer.topology import AglTopology

AGENTS = "agents.sample_agents"


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    # The runners import the test agents from this folder.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    with AglTopology(tmp_path / "agl", policy_url="http://127.0.0.1:9/v1", train_temperature=1.0,
                     concurrency=6, workers=2) as topology, topology.client() as api:
        yield api, topology


def client(gateway, agent: str, timeout_s: float = 60) -> RolloutClient:
    api, topology = gateway
    return RolloutClient(api, template="math-solver", components=[], max_tokens=8,
                         temperature=1.0, timeout_s=timeout_s, agent_class=f"{AGENTS}:{agent}",
                         wakeups=topology)


def journal(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_each_rollout_runs_once_in_its_own_process(gateway, tmp_path):
    log = tmp_path / "journal"
    tasks = [Task(f"g{i}", {"journal": str(log)}) for i in range(12)]
    results = client(gateway, "Rewarded").run(tasks, train=True)
    assert [r.state for r in results] == ["succeeded"] * 12
    assert [r.reward for r in results] == [1.0] * 12
    runs = journal(log)
    assert len(runs) == 12, runs  # both runners polled the same queue: no rollout ran twice
    assert len({url for _, _, url in runs}) == 12
    assert len({pid for _, pid, _ in runs}) == 12 and str(os.getpid()) not in {p for _, p, _ in runs}


def test_a_crashing_agent_fails_its_rollout_with_the_exit_code(gateway, tmp_path):
    _, topology = gateway
    log = tmp_path / "journal"
    [result] = client(gateway, "Crashes").run([Task("g", {"journal": str(log)})], train=True)
    assert result.state == "failed" and result.reward is None
    assert result.error == "agent process exited with code 1"
    assert topology.healthy()  # the runner itself lives on
    [ok] = client(gateway, "Rewarded").run([Task("g", {"journal": str(log)})], train=True)
    assert ok.reward == 1.0


def test_a_hung_agent_is_killed_at_its_timeout(gateway, tmp_path):
    log = tmp_path / "journal"
    start = time.monotonic()
    [result] = client(gateway, "Hangs", timeout_s=2).run([Task("g", {"journal": str(log)})],
                                                      train=True)
    assert time.monotonic() - start < 20
    assert result.state == "failed" and result.error == "timed out after 2s"
    [[_, pid, _]] = journal(log)
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(pid), 0)
