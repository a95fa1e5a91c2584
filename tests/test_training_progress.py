"""What a fit says on stderr: progress lines with elapsed time and ETA (on a terminal and off
it, driven by a fake clock), the KL method once, and the time budget's parsing."""

from __future__ import annotations

import io

import pytest
import torch

import genlatent
from genlatent.errors import TrainingError
from genlatent.training.config import format_duration, parse_duration
from genlatent.training.progress import Progress


def test_off_a_terminal_a_line_at_most_every_30_s_plus_one_per_epoch() -> None:
    now = [0.0]
    out = io.StringIO()  # not a terminal
    bar = Progress(stream=out, clock=lambda: now[0])
    bar.start_run(step=0, total_steps=200)
    for epoch in (1, 2):
        bar.start_epoch(epoch, 2, 100)
        for batch in range(1, 101):
            now[0] += 1.0  # one-second steps
            if bar.due():
                bar.update(batch, (epoch - 1) * 100 + batch, 128.0, 2.5)
        bar.close(100, epoch * 100, 128.0, 2.5)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert [line.split("] ")[1].split()[0] for line in lines] == [
        "30/100", "60/100", "90/100", "100/100"] * 2
    # ETAs from the rates so far: 30 of 100 batches in 30 s, 130 of 200 steps in 130 s
    assert lines[0].endswith("epoch 0:30<1:10  run 0:30<2:50")
    assert lines[4].endswith("epoch 0:30<1:10  run 2:10<1:10")
    assert lines[-1].endswith("epoch 1:40<0:00  run 3:20<0:00")


def test_a_time_budget_caps_the_run_eta_and_unknown_totals_show_no_eta() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(stream=out, clock=lambda: now[0], log_interval=10.0)
    bar.start_run(step=0, total_steps=1000, prior_seconds=60.0, budget_left=30.0)
    bar.start_epoch(1, None, None)
    now[0] = 10.0
    assert bar.due()
    bar.update(10, 10, 50.0, 1.0)
    # 990 steps at 1 s each would take 16:30; the budget ends in 20 s
    assert out.getvalue() == ("epoch 1 10 batches  50 samples/s  loss 1.0000  epoch 0:10  "
                              "run 1:10<0:20\n")
    assert not bar.due()


def test_fit_off_a_terminal_writes_one_line_per_short_epoch(tmp_path, capsys) -> None:
    model = genlatent.build({"data": {"kind": "vectors", "shape": [6]}, "latent_dim": 2})
    loader = [{"x": torch.ones(4, 6)}] * 3
    genlatent.Trainer(epochs=2, device="cpu", out_dir=tmp_path).fit(model, loader)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split(" [")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(" 3/3 " in line and "  run " in line for line in lines)


@pytest.mark.parametrize(
    ("prior", "line"),
    [("standard_normal", "KL: analytic (closed form Normal || Normal)"),
     ("mixture", "KL: Monte Carlo, 3 samples per step (no closed form for "
                 "Normal || mixture of Normal)"),
     ("iaf", "KL: Monte Carlo, 3 samples per step (no closed form for "
             "flow of Normal || Normal)")],
)
def test_the_kl_method_is_said_once_at_fit_start(tmp_path, capsys, prior, line) -> None:
    parts = {"posterior": prior} if prior == "iaf" else {"prior": prior}
    model = genlatent.build({"data": {"kind": "vectors", "shape": [6]}, "latent_dim": 2,
                             **parts, "objective": {"kl_samples": 3}})
    loader = [{"x": torch.ones(4, 6)}] * 3
    genlatent.Trainer(epochs=2, device="cpu", out_dir=tmp_path, progress=False).fit(model, loader)
    err = capsys.readouterr().err.splitlines()
    assert err.count(line) == 1 and sum(x.startswith("KL:") for x in err) == 1


def test_no_kl_line_for_an_autoencoder(tmp_path, capsys) -> None:
    model = genlatent.build({"model": "ae", "data": {"kind": "vectors", "shape": [6]},
                             "latent_dim": 2})
    genlatent.Trainer(epochs=1, device="cpu", out_dir=tmp_path, progress=False).fit(
        model, [{"x": torch.ones(4, 6)}])
    assert "KL:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("30m", 1800.0),
     ("1h30m", 5400.0), ("1h 5m 3s", 3903.0), ("2d", 172800.0), ("0.5h", 1800.0)],
)
def test_max_time_accepts_seconds_and_durations(value, seconds) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["30x", "m30", "1m1h", "5m5m", "", 0, -3, True, "soon"])
def test_max_time_refuses_other_values_in_one_line(value) -> None:
    with pytest.raises(TrainingError, match="max_time must be"):
        genlatent.Trainer(max_time=value)


def test_durations_print_as_clock_times() -> None:
    assert [format_duration(s) for s in (0, 59.6, 61, 3599, 3725.2)] == [
        "0:00", "1:00", "1:01", "59:59", "1:02:05"]
