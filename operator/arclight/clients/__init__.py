"""The only modules that do I/O: Kubernetes API access (and later MLflow, ledger)."""
