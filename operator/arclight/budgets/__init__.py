"""The CreditBudget room: its validation, its pure plan and its registration."""
