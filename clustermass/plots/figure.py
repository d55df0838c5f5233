"""The one matplotlib helper: Agg backend, new figures, saving PNGs (folder made, figure freed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use: cmcat starts fast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (5.0, 4.5), **kw: Any) -> tuple[Any, Any]:
    """(figure, axes) as `plt.subplots`, axes always a 2-D array (squeeze off) unless `squeeze=True`."""
    kw.setdefault("squeeze", False)
    return pyplot().subplots(nrows, ncols, figsize=figsize, **kw)


def save(fig: Any, path: Path, dpi: float | None = None, tight: bool = True) -> Path:
    """Write `fig` as PNG to `path` (making its folder), laid out tight unless `tight` is False; free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi or "figure")
    pyplot().close(fig)
    return path
