from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "recipes"
