"""`python -m arclight_trainer.runner`: a rollout runner for agl-server that forks, not spawns.

agl-controller's local runner starts a new interpreter for every rollout (about half a CPU
second of imports each, on a two-core node as much as the generation itself). This runner
speaks the same store API (claim a queued rollout by moving it to `running`, run the
rollout's `config.local.agent_class` with the same `AGL_*` environment, then `succeeded` or
`failed`), but imports the agent once and forks one child per rollout: each rollout still
gets a fresh process (isolated, killable on timeout), at the cost of a fork. Several runners
may serve one gateway (`rollouts.workers`): the `queuing -> running` transition is atomic in
the store, so a rollout another runner claimed answers 409 and is skipped.

Between passes the runner sleeps in `sigtimedwait`: a child's exit (SIGCHLD) or the trainer's
nudge after it queued rollouts (SIGUSR1) wakes it at once, so the idle poll of the store can
be slow without adding latency. With `--notify-fd` it writes a byte to that pipe once it is ready
for nudges and each time a rollout ends, so the trainer need not poll the store for results
either.

Run under the Agent Lightning interpreter with ARCLIGHT_AGL_KEY set.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass

import httpx

ATTEMPT_ID = "0"  # agentlightning.schemas.DEFAULT_ATTEMPT_ID: one attempt per rollout
KEY_ENV = "ARCLIGHT_AGL_KEY"
WAKE_SIGNALS = frozenset({signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM})
"""Blocked in the runner and taken with `sigtimedwait`: a child ended, rollouts were queued,
stop."""
TERMINAL = ("succeeded", "failed")
READY = b"r"
"""Written to the notify pipe once the runner takes nudges (its wake signals are blocked)."""


@dataclass
class Child:
    """One forked rollout process."""

    rollout_id: str
    pid: int
    deadline: float
    timeout_s: float


def agent_environment(server_url: str, key: str, rollout: dict) -> dict[str, str]:
    """The environment agl-controller gives an agent: gateway, event URL, key, env_map."""
    rid, mode = rollout["rollout_id"], "train" if rollout.get("is_train", True) else "val"
    base = server_url.rstrip("/")
    env = {"AGL_KEY": key,
           "AGL_OPENAI_BASE_URL": f"{base}/proxy/rollout/{rid}/attempt/{ATTEMPT_ID}/mode/{mode}"
                                  "/openai/v1",
           "AGL_EVENT_URL": f"{base}/api/rollouts/{rid}/attempt/{ATTEMPT_ID}/events"}
    local = (rollout.get("config") or {}).get("local") or {}
    for name, path in (local.get("env_map") or {}).items():
        value = resolve_input_path(rollout.get("input"), path)
        env[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return env


def resolve_input_path(task_input: object, path: str) -> object:
    """`input` or `input.a.0.b` from the rollout input (any other string is a literal)."""
    if path == "input":
        return task_input
    if not path.startswith("input."):
        return path
    value = task_input
    for part in path.split(".")[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise ValueError(f"config.local.env_map path not found: {path}")
    return value


def load_class(path: str) -> type:
    """`module:Class` (or `module.Class`), imported in the runner so every fork inherits it."""
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Runner:
    """Claims queued rollouts and runs each in a forked child, at most `slots` at once."""

    def __init__(self, api: httpx.Client, server_url: str, key: str, slots: int,
                 poll_s: float, notify_fd: int | None = None) -> None:
        self.api, self.server_url, self.key = api, server_url, key
        self.slots, self.poll_s, self.notify_fd = slots, poll_s, notify_fd
        self.children: dict[int, Child] = {}
        self.classes: dict[str, type] = {}
        self.stopping = False

    def run(self) -> None:
        """Serve until SIGTERM; live children are killed and their rollouts failed."""
        signal.pthread_sigmask(signal.SIG_BLOCK, WAKE_SIGNALS)
        if self.notify_fd is not None:  # from here a nudge wakes the runner, not kills it
            os.write(self.notify_fd, READY)
        try:
            while not self.stopping:
                self.reap()
                self.expire()
                claimed = self.claim() if len(self.children) < self.slots else 0
                if not claimed:
                    self.sleep()
        finally:
            for child in list(self.children.values()):
                self.kill(child, "the rollout runner stopped")

    def sleep(self) -> None:
        """Until a wake signal, the next child deadline or the idle poll, whichever is first."""
        timeout = self.poll_s
        if self.children:
            next_deadline = min(child.deadline for child in self.children.values())
            timeout = max(0.0, min(timeout, next_deadline - time.monotonic()))
        woken = signal.sigtimedwait(WAKE_SIGNALS, timeout)
        if woken is not None and woken.si_signo == signal.SIGTERM:
            self.stopping = True

    def claim(self) -> int:
        """Fork a child for each queued rollout this runner wins; return how many."""
        free = self.slots - len(self.children)
        page = self.api.get("/api/rollouts", params={"state_in": "queuing", "limit": free})
        page.raise_for_status()
        # Claim first, fork after: the agents then start (and call the model) close together,
        # so the policy server batches their first turns into one generation.
        won = [r for r in page.json()[:free] if self.patch(r["rollout_id"], "running")]
        started = 0
        for rollout in won:
            rid = rollout["rollout_id"]
            try:
                agent = self.agent_class(rollout)
                env = agent_environment(self.server_url, self.key, rollout)
            except Exception as exc:  # noqa: BLE001 - reported on the rollout
                self.patch(rid, "failed", f"cannot start the agent: {exc}")
                continue
            timeout = float((rollout.get("config") or {}).get("timeout_seconds") or 3600)
            pid = os.fork()
            if pid == 0:
                if self.notify_fd is not None:
                    os.close(self.notify_fd)
                os._exit(run_child(agent, env))
            with contextlib.suppress(OSError):  # the child does it too; whoever runs first
                os.setpgid(pid, pid)
            self.children[pid] = Child(rid, pid, time.monotonic() + timeout, timeout)
            started += 1
        return started

    def agent_class(self, rollout: dict) -> type:
        path = ((rollout.get("config") or {}).get("local") or {}).get("agent_class")
        if not path:
            raise ValueError("missing config.local.agent_class")
        if path not in self.classes:
            self.classes[path] = load_class(path)
        return self.classes[path]

    def reap(self) -> None:
        """Mark each exited child's rollout succeeded (exit 0) or failed."""
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code == 0:
                self.patch(child.rollout_id, "succeeded")
            else:
                self.patch(child.rollout_id, "failed", f"agent process exited with code {code}")

    def expire(self) -> None:
        """Kill children past their rollout's `timeout_seconds` (its model calls are dropped)."""
        now = time.monotonic()
        for child in list(self.children.values()):
            if now > child.deadline:
                self.kill(child, f"timed out after {child.timeout_s:.0f}s")

    def kill(self, child: Child, reason: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
        self.children.pop(child.pid, None)
        self.patch(child.rollout_id, "failed", reason)

    def patch(self, rollout_id: str, state: str, error: str | None = None) -> bool:
        """Move a rollout to `state`; False when the store refuses the transition."""
        status: dict = {"state": state, "last_attempt_id": ATTEMPT_ID}
        if error:
            status["error_message"] = error
        answer = self.api.patch(f"/api/rollouts/{rollout_id}", json={"status": status})
        if answer.status_code in (404, 409):
            return False
        answer.raise_for_status()
        if state in TERMINAL and self.notify_fd is not None:
            with contextlib.suppress(OSError):  # a full or closed pipe: the trainer also polls
                os.write(self.notify_fd, b".")
        return True


def run_child(agent: type, env: dict[str, str]) -> int:
    """In the forked child: own process group, the agent's environment, one `run()`."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())  # the runner's blocked set is inherited
    os.environ.update(env)
    try:
        agent().run()
        return 0
    except BaseException:  # noqa: BLE001 - the exit code is the report
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arclight_trainer.runner")
    parser.add_argument("--server", required=True, help="agl-server URL")
    parser.add_argument("--slots", type=int, default=4, help="rollouts at once")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="seconds between store polls when nothing wakes the runner")
    parser.add_argument("--notify-fd", type=int, default=None,
                        help="pipe to write a byte to whenever a rollout ends")
    parser.add_argument("--preload", action="append", default=[],
                        help="agent class to import before the first rollout")
    args = parser.parse_args(argv)
    if args.notify_fd is not None:
        os.set_blocking(args.notify_fd, False)
    key = os.environ.get(KEY_ENV, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=args.server, headers=headers, timeout=30) as api:
        runner = Runner(api, args.server, key, args.slots, args.poll, args.notify_fd)
        for path in args.preload:
            runner.classes[path] = load_class(path)
        runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
