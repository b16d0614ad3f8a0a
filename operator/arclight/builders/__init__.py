"""Pure builders: validated spec + resolution -> child manifests (no I/O)."""
