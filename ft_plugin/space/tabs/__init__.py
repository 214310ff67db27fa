"""The Space's tabs, one module each: ``layout(state, ui)`` places a tab's components and
returns them; ``connect(state, ui)`` wires its events once every tab is laid out (events
may update another tab: a comparison fills the Rate tab's blind pair).

A new tab is one module here and one line in ``TABS``.
"""

from . import card, compare, evaluate, rate, train

# (id, title, module), in page order
TABS = (
    ("train", "Train", train),
    ("compare", "Compare", compare),
    ("evaluate", "Evaluate", evaluate),
    ("rate", "Rate", rate),
    ("card", "Model card", card),
)

__all__ = ["TABS"]
