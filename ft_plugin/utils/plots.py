"""Matplotlib without pyplot: figures for reports, CJK-capable, saved as PNG quietly.

Every stage that plots (data reports, evaluation, continual learning) draws on a
figure from :func:`new_figure` and writes it with :func:`save_png`, so there is one
place that knows the backend, the fonts and the warnings to silence.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

# Fonts that render Chinese, Japanese and Korean, in order of preference, when installed.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Source Han Sans SC", "SimHei", "Microsoft YaHei")  # fmt: skip


def cjk_font() -> str | None:
    """The first installed CJK-capable font, or None (glyphs then render as boxes)."""
    from matplotlib import font_manager

    found = _known_cjk_font(font_manager.fontManager)
    if found is None and _add_system_cjk_fonts(font_manager):
        found = _known_cjk_font(font_manager.fontManager)
    return found


def _known_cjk_font(manager: Any) -> str | None:
    installed = {font.name for font in manager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


@lru_cache(maxsize=1)
def _add_system_cjk_fonts(font_manager: Any) -> bool:
    """Register CJK fonts installed after matplotlib cached its font list (once a process)."""
    paths = [p for p in font_manager.findSystemFonts() if any(
        key in Path(p).name for key in ("CJK", "wqy", "SourceHanSans", "SimHei", "msyh"))]  # fmt: skip
    for path in paths:
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError):  # an unreadable font file is not ours to fix
            continue
    return bool(paths)


def font_family() -> list[str]:
    """Latin first, then the CJK font: matplotlib falls back glyph by glyph (>= 3.6)."""
    font = cjk_font()
    return ["DejaVu Sans", font] if font else ["DejaVu Sans"]


@lru_cache(maxsize=1)
def _use_cjk_fallback() -> None:
    import matplotlib

    matplotlib.rcParams["font.family"] = font_family()


def new_figure(width: float = 6, height: float = 3.4, dpi: int = 100) -> tuple[Any, Any]:
    """A (figure, axes) pair on the Agg canvas: no display, no global pyplot state.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        figure, axes = new_figure()
        save_png(figure, "plot.png")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _use_cjk_fallback()  # every label, Chinese group names included, draws in a font that has it
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_png(figure: Any, path: str | Path) -> Path:
    """Lay out and write ``figure``; missing-glyph warnings are expected without CJK fonts."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        warnings.filterwarnings("ignore", message=r".*[Mm]atplotlib currently does not support")
        figure.tight_layout()
        figure.savefig(path, format="png")
    return path
