"""Training: the losses of SPEC.md §3 as pure tensor functions, and one loop for every method."""
