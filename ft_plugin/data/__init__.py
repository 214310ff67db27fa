"""Data stage: reading, converting, mixing and splitting datasets."""

from .build import TrainingData, build_training_data
from .reading import read_rows

__all__ = ["TrainingData", "build_training_data", "read_rows"]
