"""A training history drawn as loss/accuracy figures (matplotlib, no pyplot, no display)."""

from collections.abc import Sequence
from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.records import EpochRecord, StepRecord


def _draw(fig: Figure, steps: Sequence[StepRecord], epochs: Sequence[EpochRecord], title: str) -> None:
    loss_ax, acc_ax = fig.subplots(1, 2)
    if steps:
        per_epoch = max(p.step for p in steps) / max(max(p.epoch for p in steps), 1)
        loss_ax.plot(
            [p.step / per_epoch for p in steps],
            [p.loss for p in steps],
            lw=0.8,
            alpha=0.6,
            label="train loss (per step)",
        )
    if epochs:
        xs = [e.epoch for e in epochs]
        loss_ax.plot(xs, [e.train_loss for e in epochs], "o-", label="train loss (epoch)")
        loss_ax.plot(xs, [e.test_loss for e in epochs], "s--", label="test loss")
        acc_ax.plot(xs, [e.train_acc for e in epochs], "o-", label="train acc")
        acc_ax.plot(xs, [e.test_acc for e in epochs], "s--", label="test acc")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)


def render_history(
    steps: Sequence[StepRecord], epochs: Sequence[EpochRecord], *, title: str, fmt: str = "png"
) -> bytes:
    """The loss and accuracy curves as PNG or SVG bytes."""
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    _draw(fig, steps, epochs, title)
    buffer = BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    return buffer.getvalue()
