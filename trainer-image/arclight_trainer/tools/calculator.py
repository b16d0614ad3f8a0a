"""A safe arithmetic calculator: numbers, + - * / // % **, parentheses, a few functions."""

from __future__ import annotations

import ast
import math
import operator

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS = {"abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt}
MAX_EXPONENT = 64
MAX_LENGTH = 200


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot evaluate."""


def evaluate(expression: str) -> float:
    """Evaluate an arithmetic expression; CalculatorError for anything else."""
    text = expression.strip().rstrip("=?.").replace("×", "*").replace("÷", "/").replace("^", "**")
    if not text or len(text) > MAX_LENGTH:
        raise CalculatorError("expected a short arithmetic expression like 7 + 5")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise CalculatorError(f"cannot parse {text!r}") from None
    try:
        return _eval(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        raise CalculatorError(str(exc) or type(exc).__name__) from None


def format_number(value: float) -> str:
    """12.0 -> '12', 0.5 -> '0.5' (at most 6 decimals)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
            node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError("exponent too large")
        return BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS and not node.keywords):
        return FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise CalculatorError(f"not allowed in a calculation: {ast.unparse(node)!r}")
