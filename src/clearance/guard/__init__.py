"""Guard: classifiers that score every prompt before it reaches a model."""
