"""Experiments (trials on hidden refs) and hyperparameter search."""
