"""CreditBudget: kopf wiring only. The decisions are ``arclight.budgets.plan`` (pure); the
figures come from the meter (``arclight.framework.meter``)."""
from arclight.budgets.kind import CREDIT_BUDGET
from arclight.framework.wiring import register

register(CREDIT_BUDGET)
