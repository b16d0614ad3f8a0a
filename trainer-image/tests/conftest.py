"""Fixtures for the trainer tests: run the real trainer CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TRAINER_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TrainerRun:
    returncode: int
    output: str
    report: dict
    termination: dict | None
    checkpoint_dir: Path


@pytest.fixture
def run_trainer(tmp_path):
    """Run `python -m arclight_trainer run` on a config dict; bounded by `timeout` seconds."""

    def run(config: dict, timeout: float = 400, extra_args: tuple = ()) -> TrainerRun:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        report_file = tmp_path / "report.json"
        termination = tmp_path / "termination-log"
        env = {**os.environ, "ARCLIGHT_TERMINATION_LOG": str(termination),
               "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "arclight_trainer", "run", "--config", str(config_file),
             "--report-file", str(report_file), "--workdir", str(tmp_path / "work"),
             "--metrics-port", "0", *extra_args],
            cwd=TRAINER_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        print(done.stdout)
        return TrainerRun(
            returncode=done.returncode, output=output,
            report=json.loads(report_file.read_text()) if report_file.exists() else {},
            termination=json.loads(termination.read_text()) if termination.exists() else None,
            checkpoint_dir=Path(config["checkpoint"]["dir"]))

    return run
