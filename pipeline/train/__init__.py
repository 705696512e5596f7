"""Training the progressive face generator: data preparation, degradation, losses, trainer, CLI."""
