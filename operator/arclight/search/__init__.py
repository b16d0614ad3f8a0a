"""Sweep: the hyperparameter search room (trial parameters, Optuna, the pure plan)."""
