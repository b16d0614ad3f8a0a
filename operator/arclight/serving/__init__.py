"""The serving room (pure): ModelDeployment builders and plan."""
