"""Training the progressive face generator: the typed recipe, data preparation, degradation, losses, trainer.

The commands that drive it live in `pipeline/cli/` (prepare, prepare-video, train, export).
"""
