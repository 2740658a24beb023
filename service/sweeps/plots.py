"""A sweep drawn: the metric against each searched parameter, and over trials with the best so far."""

from io import BytesIO
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.storage.orm import Sweep
from service.sweeps.study import TrialView


def _scored(trials: list[TrialView]) -> list[TrialView]:
    return [t for t in trials if t.value is not None]


def _against_parameter(ax: Axes, path: str, trials: list[TrialView], metric: str, log: bool) -> None:
    values = [t.params.get(path) for t in trials]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    labels = sorted({repr(v) for v in values})
    xs: list[Any] = values if numeric else [labels.index(repr(v)) for v in values]
    colors = ["tab:gray" if t.pruned_epoch is not None else "tab:blue" for t in trials]
    ax.scatter(xs, [t.value or 0.0 for t in trials], c=colors)  # only trials with a value are drawn
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    elif log or (xs and min(xs) > 0 and max(xs) >= 50 * min(xs)):  # values over decades read better on a log axis
        ax.set_xscale("log")
    ax.set(xlabel=path, ylabel=metric)
    ax.grid(True, alpha=0.3)


def _over_trials(ax: Axes, trials: list[TrialView], metric: str, maximize: bool) -> None:
    ax.plot([t.number for t in trials], [t.value or 0.0 for t in trials], "o", label=f"{metric} (last epoch)")
    best: list[float] = []
    for t in trials:
        assert t.value is not None
        best.append(t.value if not best else (max if maximize else min)(best[-1], t.value))
    ax.step([t.number for t in trials], best, where="post", label="best so far")
    ax.set(xlabel="trial", ylabel=metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def render_sweep(sweep: Sweep, trials: list[TrialView]) -> bytes:
    """The sweep's figure as PNG bytes (gray points: pruned trials)."""
    scored = _scored(trials)
    paths = list(sweep.space)
    fig = Figure(figsize=(4 * (len(paths) + 1), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(paths) + 1, squeeze=False)[0]
    for ax, path in zip(axes, paths, strict=False):
        _against_parameter(ax, path, scored, sweep.metric, bool(sweep.space[path].get("log")))
    _over_trials(axes[-1], scored, sweep.metric, sweep.goal == "max")
    if not scored:
        for ax in axes:
            ax.text(0.5, 0.5, "no finished epoch yet", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"sweep {sweep.id}: {sweep.name} ({sweep.sampler})")
    buffer = BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
