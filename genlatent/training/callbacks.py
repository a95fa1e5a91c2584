"""Training callbacks (registered in ``registry.callbacks``); filled in by the trainer."""
