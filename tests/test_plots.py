"""Plots draw Chinese labels (department names, topics) with a font that has the glyphs."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from ft_plugin.utils import plots

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_chinese_labels_are_drawn_with_a_font_that_has_them(tmp_path: Path) -> None:
    if plots.cjk_font() is None:
        reason = "no CJK font installed (apt-get install fonts-noto-cjk; make browser does it)"
        if IN_CI:
            raise AssertionError(f"CI=true: {reason}")
        pytest.skip(reason)
    figure, axes = plots.new_figure()
    axes.bar(["心血管科", "神经科", "消化科"], [3, 2, 1])
    axes.set_title("每个科室的行数 (rows per department)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(tmp_path / "groups.png", format="png")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert missing == []
    assert (tmp_path / "groups.png").stat().st_size > 0
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=plots.cjk_font()))
    assert ord("心") in FT2Font(path).get_charmap()


def test_without_the_fallback_the_same_labels_would_be_boxes(tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    figure = Figure()
    FigureCanvasAgg(figure)
    figure.add_subplot().set_title("心血管科", fontproperties=FontProperties(family="DejaVu Sans"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(tmp_path / "boxes.png", format="png")
    assert any("missing from" in str(w.message) for w in caught)  # what the fallback prevents
