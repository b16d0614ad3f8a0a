"""The pure vocabulary every room shares: names and labels, conditions, errors, plans."""
