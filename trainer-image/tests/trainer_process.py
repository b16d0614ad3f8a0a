"""The real trainer CLI as a subprocess (a module of its own: `conftest` names collide across
test folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TRAINER_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TrainerRun:
    returncode: int
    output: str
    report: dict
    termination: dict | None
    checkpoint_dir: Path


class TrainerProcess:
    """`python -m arclight_trainer run` on `config`, started in the background; files in `directory`."""

    def __init__(self, config: dict, directory: Path, metrics_port: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config, self.directory = config, directory
        config_file = directory / "config.json"
        config_file.write_text(json.dumps(config))
        self.report_file = directory / "report.json"
        self.termination = directory / "termination-log"
        self.log_path = directory / "trainer.log"
        env = {**os.environ, "ARCLIGHT_TERMINATION_LOG": str(self.termination),
               "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "arclight_trainer", "run", "--config", str(config_file),
                 "--report-file", str(self.report_file), "--workdir", str(directory / "work"),
                 "--metrics-port", str(metrics_port)],
                cwd=TRAINER_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> TrainerRun:
        """Wait for the exit (killing the trainer after `timeout` seconds) and read its outputs."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        output = self.log_path.read_text(errors="replace")
        print(output)
        return TrainerRun(
            returncode=self.proc.returncode, output=output,
            report=json.loads(self.report_file.read_text()) if self.report_file.exists() else {},
            termination=(json.loads(self.termination.read_text())
                         if self.termination.exists() else None),
            checkpoint_dir=Path(self.config["checkpoint"]["dir"]))
