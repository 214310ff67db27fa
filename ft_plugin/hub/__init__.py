"""Hub stage: `hf://` resolution, model cards, publishing."""
