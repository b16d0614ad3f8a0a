"""Helpers of `make demo` (stdlib only): the progress line, the agent's answer, the phase table.

    report.py progress STATUS_JSON SECONDS      one progress-bar line for a TrainingRun status
    report.py ask URL QUESTION ANSWER          ask the served agent; print tool calls, answer, reward
    report.py table PHASES_FILE TRAINER_LOG    the phase table (demo phases + the trainer's own)
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from pathlib import Path

WIDTH = 24


def progress(status_json: str, seconds: str) -> str:
    status = json.loads(status_json or "{}")
    phase = status.get("phase") or "Pending"
    done = status.get("progress") or {}
    step, total = done.get("step") or 0, done.get("totalSteps") or 0
    filled = int(WIDTH * step / total) if total else 0
    reward = (status.get("metrics") or {}).get("reward", {}).get("mean")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    parts = [f"[{'#' * filled}{'.' * (WIDTH - filled)}]", f"{phase:9s}",
             f"step {step}/{total or '?'}"]
    if reward is not None:
        parts.append(f"reward {reward:.3g}")
    cost = status.get("cost")
    if cost is not None:
        parts.append(f"{cost.get('credits', 0)} credits")
    if (status.get("attempts") or 1) > 1:
        parts.append(f"attempt {status['attempts']}")
    degraded = conditions.get("Degraded") or {}
    if degraded.get("status") == "True":
        parts.append(f"({degraded.get('message')})")
    parts.append(f"({seconds} s)")
    return "  ".join(parts)


def ask(url: str, question: str, answer: str) -> int:
    body = json.dumps({"input": {"question": question, "answer": float(answer)}}).encode()
    request = urllib.request.Request(f"{url}/v1/agent/run", data=body,
                                     headers={"content-type": "application/json"})
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=180) as response:
        result = json.load(response)
    print(f"  question: {question}")
    for message in result["messages"][2:]:
        role = "agent" if message["role"] == "assistant" else "tool "
        print(f"  {role}: {message['content'].strip()}")
    for call in result["toolCalls"]:
        print(f"  tool call: {call['tool']}({call['input']}) -> {call['output']}")
    reward = result.get("reward") or {}
    print(f"  answer: {result['answer']!r} (expected {answer}), "
          f"reward {reward.get('total', float('nan')):.3g} "
          f"{'solved' if reward.get('success') else 'not solved'}, "
          f"{result['turns']} turn(s), {time.monotonic() - start:.1f} s, deterministic decoding")
    return 0


def table(phases_file: str, trainer_log: str) -> int:
    text = Path(phases_file).read_text()
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    total = sum(float(seconds) for _, seconds in rows)
    print(f"  {'phase':34s} {'seconds':>8s}")
    for name, seconds in rows:
        print(f"  {name:34s} {float(seconds):8.0f}")
        if name == "training (pod start to Succeeded)":
            match = re.search(r"^trainer phases: (.*)$", Path(trainer_log).read_text(), re.MULTILINE)
            for item in (match.group(1).split() if match else []):
                label, value = item.split("=")
                print(f"    {label.replace('_', ' '):32s} {float(value[:-1]):8.1f}")
    print(f"  {'total':34s} {total:8.0f}")
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "progress":
        print(progress(*args))
    elif command == "ask":
        sys.exit(ask(*args))
    else:
        sys.exit(table(*args))
