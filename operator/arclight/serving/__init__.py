"""The serving room (pure): ModelDeployment builders, rollout decisions, plan and kind."""
