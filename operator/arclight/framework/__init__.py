"""The reconcile framework: frame, work queue, child index, generic apply, settings, runtime."""
