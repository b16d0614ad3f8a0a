"""A restricted evaluator for model-written Python functions.

Two fences: the source is checked statically (no imports, no dunder or private names, no
eval/exec/open and friends), then run in a separate isolated interpreter with a small
builtins whitelist, CPU/memory/file limits and a wall-clock timeout.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

TIMEOUT_S = 2.0
MEMORY_BYTES = 512 * 1024 * 1024
BANNED_NAMES = {"eval", "exec", "compile", "open", "input", "globals", "locals", "vars",
                "getattr", "setattr", "delattr", "breakpoint", "exit", "quit", "help",
                "memoryview", "type", "object", "super", "classmethod", "staticmethod"}
BANNED_NODES = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.ClassDef,
                ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom)

RUNNER = r"""
import json, resource, sys
CPU, MEMORY = (int(v) for v in sys.argv[1:3])
resource.setrlimit(resource.RLIMIT_CPU, (CPU, CPU + 1))
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
SAFE = ["abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter", "float",
        "int", "isinstance", "len", "list", "map", "max", "min", "ord", "pow", "range",
        "reversed", "round", "set", "sorted", "str", "sum", "tuple", "zip", "ValueError",
        "TypeError", "ZeroDivisionError", "Exception", "KeyError", "IndexError", "True",
        "False", "None"]
import builtins
safe = {name: getattr(builtins, name) for name in SAFE if hasattr(builtins, name)}
job = json.loads(sys.stdin.read())
results = []
try:
    scope = {"__builtins__": safe}
    exec(compile(job["code"], "<answer>", "exec"), scope)
    func = scope.get(job["entry_point"])
    if not callable(func):
        raise NameError("no function " + job["entry_point"])
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__ + ": " + str(exc)[:200]}))
    sys.exit(0)
for case in job["tests"]:
    try:
        got = func(*case["args"])
        results.append({"ok": got == case["expected"] or (
            isinstance(got, tuple) and list(got) == case["expected"]), "got": repr(got)[:80]})
    except Exception as exc:
        results.append({"ok": False, "got": type(exc).__name__ + ": " + str(exc)[:80]})
print(json.dumps({"results": results}))
"""


class SandboxError(ValueError):
    """Code refused by the static check, crashing on load, or running out of time."""


def check_source(code: str, entry_point: str) -> ast.Module:
    """Parse and statically vet `code`; it must define function `entry_point`."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise SandboxError(f"syntax error: {exc.msg} (line {exc.lineno})") from None
    for node in ast.walk(tree):
        if isinstance(node, BANNED_NODES):
            raise SandboxError(f"{type(node).__name__} is not allowed")
        name = node.id if isinstance(node, ast.Name) else (
            node.attr if isinstance(node, ast.Attribute) else None)
        if name and (name.startswith("_") or name in BANNED_NAMES):
            raise SandboxError(f"name {name!r} is not allowed")
    if not any(isinstance(n, ast.FunctionDef) and n.name == entry_point for n in tree.body):
        raise SandboxError(f"define a function named {entry_point}")
    return tree


def run_tests(code: str, entry_point: str, tests: list[dict]) -> list[bool]:
    """Run `entry_point(*args) == expected` for each test in an isolated interpreter."""
    check_source(code, entry_point)
    job = json.dumps({"code": code, "entry_point": entry_point, "tests": tests})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", RUNNER, str(int(TIMEOUT_S)), str(MEMORY_BYTES)],
            input=job, capture_output=True, check=False, text=True, timeout=TIMEOUT_S, env={}, cwd="/")
    except subprocess.TimeoutExpired:
        raise SandboxError(f"timed out after {TIMEOUT_S:g}s") from None
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SandboxError(f"evaluator died (exit {done.returncode})") from None
    if "error" in report:
        raise SandboxError(report["error"])
    return [bool(r["ok"]) for r in report["results"]]

