"""`convlab jobs watch` on a terminal: rich bars per downloaded file and per epoch, with loss, accuracy and ETA."""

import io

from rich.console import Console

from service.client import Event
from service.client.watch import LiveDisplay, PlainDisplay

EPOCH = {"train_loss": 0.5, "train_acc": 0.81, "test_loss": 0.6, "test_acc": 0.79, "lr": 0.9, "seconds": 3.0}
RUNNING = {"status": "running", "total_epochs": 2, "total_steps": 20, "eta_seconds": 75.0}
EVENTS = [
    Event("status", {"job_id": 7, "status": "running", "reason": "claimed"}, 2),
    Event("download", {"dataset": "mnist", "file": "t10k-labels-idx1-ubyte.gz", "bytes_done": 4542,
                       "total_bytes": 4542, "verified": True}, 3),
    Event("progress", {"job_id": 7, "epoch": 1, "step": 4, **RUNNING}),
    Event("epoch", {"job_id": 7, "epoch": 1, **EPOCH}, 4),
    Event("progress", {"job_id": 7, "epoch": 2, "step": 15, **RUNNING}),
    Event("status", {"job_id": 7, "status": "succeeded", "reason": "completed 2 epochs, 20 steps"}, 5),
]  # fmt: skip


def test_a_terminal_gets_a_bar_per_epoch_and_per_downloaded_file():
    screen = io.StringIO()
    display = LiveDisplay(Console(file=screen, force_terminal=True, width=160))
    for event in EVENTS:
        display.show(event)
    display.close()
    text = screen.getvalue()
    assert "\x1b[" in text  # drawn, with a terminal's escapes
    assert "download t10k-labels-idx1-ubyte.gz" in text and "verified" in text
    assert "epoch 1" in text and "10/10" in text and "epoch 2" in text and "5/10" in text
    assert "loss 0.5000, train acc 0.810, test acc 0.790" in text and "ETA 0:01:15" in text
    assert "job 7: succeeded (completed 2 epochs, 20 steps)" in text


def test_plain_lines_name_the_epoch_its_step_and_the_eta(capsys):
    display = PlainDisplay()
    for event in EVENTS:
        display.show(event)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "job 7: running (claimed)",
        "dataset mnist: verified t10k-labels-idx1-ubyte.gz 4.5 kB/4.5 kB",
        "epoch 1/2: step 4/10, ETA 0:01:15",
        "epoch 1: loss 0.5000, train acc 0.810, test acc 0.790, 3.0 s",
        "job 7: succeeded (completed 2 epochs, 20 steps)",
    ]  # the second progress event comes within PLAIN_PROGRESS_SECONDS of the first: not printed
