"""The training room (pure): magic train, catalog, diagnosis, reports, builders, plan."""
