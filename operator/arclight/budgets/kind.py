"""The CreditBudget kind as the framework sees it: cluster-scoped, no children; its figures
come from the meter's snapshot (``Facts.metering``)."""
from __future__ import annotations

from arclight.api import creditbudget as api
from arclight.api.common import GROUP, VERSION
from arclight.budgets.plan import on_error, plan
from arclight.budgets.validation import validate_creditbudget
from arclight.core.plan import Kind

CREDIT_BUDGET = Kind(group=GROUP, version=VERSION, kind=api.KIND, plural=api.PLURAL,
                     namespaced=False, children=(), parse=validate_creditbudget, plan=plan,
                     on_error=on_error)
