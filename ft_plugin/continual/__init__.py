"""Continual learning: stages, EWC, replay, per-task adapters, routing, forgetting."""
