"""The trainer's Prometheus endpoint (port 9090 in the pod): reward, loss, step, samples/s."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class TrainerMetrics:
    """Gauges in a private registry; `serve(port)` exposes them on /metrics (port 0: off)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reward = Gauge("arclight_trainer_reward_mean", "Mean rollout reward of the last step",
                            registry=self.registry)
        self.validation_reward = Gauge("arclight_trainer_validation_reward",
                                       "Mean greedy reward on the validation split",
                                       registry=self.registry)
        self.loss = Gauge("arclight_trainer_loss", "Loss of the last step", registry=self.registry)
        self.step = Gauge("arclight_trainer_step", "Optimizer steps done", registry=self.registry)
        self.total_steps = Gauge("arclight_trainer_total_steps", "Optimizer steps planned",
                                 registry=self.registry)
        self.samples_per_second = Gauge("arclight_trainer_samples_per_second",
                                        "Rollouts per second in the last step",
                                        registry=self.registry)
        self._server = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve /metrics on `port` (0 leaves it off)."""
        if port:
            self._server, _ = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
