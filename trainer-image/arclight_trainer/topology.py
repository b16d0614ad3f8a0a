"""Start, health-check and stop the Agent Lightning processes of one run, on loopback.

agl-server (rollout store + model proxy) and the rollout runners run under the Python 3.12
environment named by ARCLIGHT_AGL_PYTHON. The runners are `workers` processes of
`arclight_trainer.runner` (one forked child per rollout, agent imported once) by default, or
agl-controller's local runner (a new interpreter per rollout; `runner="agl-controller"`, kept
for comparison in the rollout bench). The shared key goes through the environment, never
the command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from .rollouts import AGENT_CLASS, POLL_INTERVAL_S
from .runner import READY

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the source root holding arclight_trainer
KEY_ENV = "ARCLIGHT_AGL_KEY"
MODEL_NAME = "policy"
RUNNERS = ("fork", "agl-controller")
NEWS_FALLBACK_S = 0.5
"""With the fork runners' pipe: the longest wait before the store is polled anyway."""


def agl_python() -> str:
    """The Python 3.12 interpreter with agentlightning (ARCLIGHT_AGL_PYTHON overrides)."""
    if os.environ.get("ARCLIGHT_AGL_PYTHON"):
        return os.environ["ARCLIGHT_AGL_PYTHON"]
    checkout = PACKAGE_ROOT.parent / ".venv-agl" / "bin" / "python"
    return str(checkout) if checkout.exists() else "/opt/agl/bin/python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AglTopology:
    """agl-server + agl-controller for one run; use as a context manager."""

    def __init__(self, workdir: Path, *, policy_url: str, train_temperature: float,
                 concurrency: int, workers: int = 1, runner: str = "fork",
                 port: int | None = None, log_to: Path | None = None) -> None:
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}")
        self.workdir = workdir
        self.workers, self.runner = max(1, min(workers, concurrency)), runner
        self.policy_url = policy_url
        self.train_temperature = train_temperature
        self.concurrency = concurrency
        self.port = port or free_port()
        self.key = secrets.token_hex(16)
        self.log_path = log_to or workdir / "agl.log"
        self._procs: list[subprocess.Popen] = []
        self._runners: list[subprocess.Popen] = []
        self._news: int | None = None  # read end of the pipe the fork runners write to
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for the gateway's store API, authenticated with the run's key."""
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.key}"})

    def env(self) -> dict[str, str]:
        """The environment for Agent Lightning processes. The agl interpreter has the project
        installed itself (never put this interpreter's site-packages on its path: compiled
        packages of another Python version break it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGL_")}
        env[KEY_ENV] = self.key
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, module: str, overrides: list[str], name: str | None,
               pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        """Start `module` under the agl interpreter (`name`: a hydra app's run directory)."""
        command = [agl_python(), "-m", module, *overrides]
        if name is not None:
            command += [f"hydra.run.dir={self.workdir / 'hydra' / name}",
                        "hydra.output_subdir=null", "hydra/job_logging=none",
                        "hydra/hydra_logging=none"]
        proc = subprocess.Popen(
            command, env=self.env(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds)
        self._procs.append(proc)
        return proc

    def start(self, timeout: float = 60.0) -> None:
        """Start agl-server, register the policy server, then start the rollout runners."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open until stop())
        key_ref = "${oc.env:" + KEY_ENV + "}"
        self._spawn("agentlightning.server", [
            "host=127.0.0.1", f"port={self.port}", f"key={key_ref}",
            f"default_proxy.model_name={MODEL_NAME}",
            f"default_proxy.train.temperature={self.train_temperature}",
            "default_proxy.val.temperature=0"], "server")
        self._wait_healthy(timeout)
        with self.client() as api:
            api.post("/api/models", json=[{"model": MODEL_NAME, "endpoint": self.policy_url,
                                           "version": 0}]).raise_for_status()
        if self.runner == "agl-controller":
            self._spawn("agentlightning.controller", [
                "runner_type=local", f"agl_server.url={self.url}", f"agl_server.key={key_ref}",
                f"local_runner.maximum_size={self.concurrency}",
                "local_runner.poll_interval=0.2"], "controller")
        else:
            slots = -(-self.concurrency // self.workers)
            self._news, news_w = os.pipe()
            os.set_blocking(self._news, False)
            try:
                for _ in range(self.workers):
                    self._runners.append(self._spawn("arclight_trainer.runner", [
                        "--server", self.url, "--slots", str(slots), "--preload", AGENT_CLASS,
                        "--notify-fd", str(news_w)], None, pass_fds=(news_w,)))
            finally:
                os.close(news_w)
            self._wait_runners_ready(timeout)
        time.sleep(0.2)
        self._check_alive()

    def _wait_runners_ready(self, timeout: float) -> None:
        """Until every fork runner wrote its ready byte (a nudge before that would kill it)."""
        assert self._news is not None
        ready, deadline = 0, time.monotonic() + timeout
        while ready < len(self._runners):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the rollout runners were not ready in {timeout:.0f}s "
                                   f"(log: {self.log_path})")
            if select.select([self._news], [], [], 0.2)[0]:
                with contextlib.suppress(BlockingIOError):
                    ready += os.read(self._news, 4096).count(READY)

    def nudge(self) -> None:
        """Tell the runners rollouts were queued (they claim them at once, not at their next
        poll)."""
        for proc in self._runners:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGUSR1)

    def wait(self) -> None:
        """Wait until a rollout may have ended: a runner's byte on the pipe (or at most
        NEWS_FALLBACK_S), or the client's plain poll interval without a pipe (agl-controller)."""
        if self._news is None:
            time.sleep(POLL_INTERVAL_S)
            return
        readable, _, _ = select.select([self._news], [], [], NEWS_FALLBACK_S)
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._news, 4096):
                    pass

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"agl-server did not become healthy in {timeout:.0f}s "
                           f"(log: {self.log_path})")

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(proc.args[1:3])} exited with {proc.returncode}; "
                                   f"the end of {self.log_path}:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(unreadable: {exc})"

    def healthy(self) -> bool:
        """Both processes are running and the gateway answers."""
        try:
            self._check_alive()
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except (RuntimeError, httpx.TransportError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the controller then the server (their process groups); SIGKILL stragglers."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        self._procs.clear()
        self._runners.clear()
        if self._news is not None:
            os.close(self._news)
            self._news = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def print_log_tail(path: Path, lines: int = 30) -> None:
    """Echo the end of the Agent Lightning log to stderr (for failures)."""
    if path.exists():
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print("\n".join(tail), file=sys.stderr)
