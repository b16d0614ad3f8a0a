"""Which budget pays for what: label selectors over namespaces, and the charged budget."""
from __future__ import annotations

from collections.abc import Mapping

from arclight.api.creditbudget import LabelSelector


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``selector`` (Kubernetes label-selector semantics) matches ``labels``; an
    empty selector matches everything."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        if expr.operator == "In" and (not present or labels[expr.key] not in expr.values):
            return False
        if expr.operator == "NotIn" and present and labels[expr.key] in expr.values:
            return False
        if expr.operator == "Exists" and not present:
            return False
        if expr.operator == "DoesNotExist" and present:
            return False
    return True


def namespace_budgets(selectors: Mapping[str, LabelSelector],
                      namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, tuple[str, ...]]:
    """``{namespace: (budget, ...)}``: the budgets (by name, sorted) selecting each namespace
    (namespaces no budget selects are left out)."""
    found: dict[str, tuple[str, ...]] = {}
    for namespace, labels in namespaces.items():
        names = tuple(sorted(name for name, sel in selectors.items() if selects(sel, labels)))
        if names:
            found[namespace] = names
    return found


def charged_budget(budget_ref: str | None, selecting: tuple[str, ...]) -> str | None:
    """The budget work is charged to: its ``budgetRef``, else the one budget selecting its
    namespace (None when none does, or when several do: that is an error the work shows)."""
    if budget_ref:
        return budget_ref
    return selecting[0] if len(selecting) == 1 else None
