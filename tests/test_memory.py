"""ft_plugin.utils.memory: peak and current memory, shared by training and evaluation."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from ft_plugin.callbacks import PeakMemoryCallback
from ft_plugin.utils import memory

PACKAGE = Path(memory.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level
    }
    return names


_PEAK_CHECK = """
import sys
from ft_plugin.utils import memory
before = memory.current_rss_mb()
block = b"\\x01" * (96 * 2**20)  # every page written
during = memory.current_rss_mb()
del block
assert during >= before + 64, (before, during)
assert memory.peak_rss_mb() >= during - 1  # the peak outlives it (the kernel lags a few pages)
assert memory.peak_rss_mb() > memory.current_rss_mb() + 32
assert memory.peak_memory_mb() == memory.peak_rss_mb() or "torch" in sys.modules
"""


def test_peak_rss_is_the_true_peak() -> None:
    # A fresh process: in a long test session freed heap pages are reused, hiding the rise.
    result = subprocess.run([sys.executable, "-c", _PEAK_CHECK], capture_output=True, text=True,
                            timeout=120, cwd=PACKAGE.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_callback_logs_peak_memory() -> None:
    logs: dict[str, float] = {}
    PeakMemoryCallback().on_log(None, None, None, logs=logs)
    assert logs["peak_memory_mb"] > 0


def test_memory_is_base_layer_and_evaluate_does_not_reach_into_training() -> None:
    roots = {name.split(".")[0] for name in _imports(PACKAGE / "memory.py")}
    assert roots <= set(sys.stdlib_module_names) | {"psutil", "torch"}
    for path in (PACKAGE / "evaluate").glob("*.py"):
        bad = {
            n for n in _imports(path) if n.startswith(("ft_plugin.callbacks", "ft_plugin.train"))
        }
        assert not bad, f"{path.name} imports {bad}"
