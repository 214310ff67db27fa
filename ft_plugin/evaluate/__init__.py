"""Evaluate stage: perplexity, text metrics, classification, serving metrics, human ratings."""
