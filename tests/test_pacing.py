"""Automatic pacing against a fake clock: captures cost about the budget, whatever the step time."""
import pytest

from nbweights.capture.pacing import Pacer


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(step_seconds, capture_seconds, steps=5000, budget=0.02, prepare_seconds=0.0):
    """Train ``steps`` steps; each capture is preceded, inside its step, by ``prepare_seconds``
    of work told to the pacer (the weights read before the update). Returns the captures and
    the fraction of the whole time that capturing took."""
    clock = FakeClock()
    pacer = Pacer("auto", budget=budget, clock=clock)
    started = pacer.start()
    clock.now += capture_seconds
    pacer.done(0, started)
    captured, capture_time = 0, 0.0
    for step in range(1, steps + 1):
        clock.now += step_seconds
        if step >= pacer.next_step:
            clock.now += prepare_seconds
            pacer.prepared(prepare_seconds)
            started = pacer.start()
            clock.now += capture_seconds
            pacer.done(step, started)
            captured += 1
            capture_time += prepare_seconds + capture_seconds
    return captured, capture_time / clock.now


@pytest.mark.parametrize("step_seconds", [0.0003, 0.01, 3.0])
def test_auto_keeps_capture_cost_near_the_budget(step_seconds):
    captured, overhead = simulate(step_seconds, capture_seconds=0.002)
    assert overhead <= 0.025
    if step_seconds >= 0.1:
        assert captured == 5000  # slow steps: every step is captured
    else:
        assert captured >= 5000 * step_seconds * 0.02 / 0.002 * 0.7


def test_work_before_the_update_counts_as_capture_cost_not_step_time():
    # ResNet-18 on this CPU: the update ratio's read of the weights before the step costs about
    # as much as the capture after it; counted as step time it would double the captures' share.
    captured, overhead = simulate(0.12, capture_seconds=0.02, prepare_seconds=0.02, steps=2000)
    assert overhead == pytest.approx(0.02, rel=0.2)
    alone, _ = simulate(0.12, capture_seconds=0.04, steps=2000)
    assert abs(captured - alone) <= 2


def test_every_n_is_exact():
    clock = FakeClock()
    pacer = Pacer(4, clock=clock)
    assert pacer.next_step == 4
    pacer.done(4, pacer.start())
    assert pacer.next_step == 8


def test_budget_must_be_a_fraction():
    with pytest.raises(ValueError, match="budget="):
        Pacer("auto", budget=2)


def test_one_slow_first_capture_does_not_stall_the_live_picture():
    # Notebook 2's model: a 0.33 ms step and a 0.8 ms capture, but the first measured capture
    # takes 40 ms (warm-up). Within the first second the dashboard still gets 20 captures.
    clock = FakeClock()
    pacer = Pacer("auto", clock=clock)
    pacer.done(0, pacer.start())
    captures, step = [], 0
    while clock.now < 1.0:
        step += 1
        clock.now += 0.00033
        if step >= pacer.next_step:
            started = pacer.start()
            clock.now += 0.040 if len(captures) == 1 else 0.0008
            pacer.done(step, started)
            captures.append(clock.now)
    assert len(captures) >= 20
    # and after the warm-up, the captures take about the budget of the time since
    late = [t for t in captures if t > 0.5]
    assert len(late) * 0.0008 / 0.5 == pytest.approx(0.02, rel=0.25)


def test_interval_grows_at_most_eightfold_per_capture():
    clock = FakeClock()
    pacer = Pacer("auto", clock=clock)
    pacer.done(0, pacer.start())
    intervals, step = [], 0
    for _ in range(6):
        step = pacer.next_step
        clock.now += 0.001 * (step - pacer._last_step)
        started = pacer.start()
        clock.now += 1.0  # each capture costs 1000 steps: wanted interval 50 000, capped
        pacer.done(step, started)
        intervals.append(pacer.next_step - step)
    assert intervals == [1, 8, 64, 512, 4096, 10_000]


def test_without_an_optimizer_the_gradients_summary_counts_as_capture_cost(monkeypatch):
    """Without an optimizer the gradients are summarised in the backward pass, before the capture
    at the next forward: that work is the capture's cost, so pacing sees it (here 20 ms)."""
    import time

    import torch
    from torch import nn

    import nbweights as nbw
    from nbweights.capture.groups import ParameterGroup

    summarise = ParameterGroup._grads_on_device
    monkeypatch.setattr(ParameterGroup, "_grads_on_device",
                        lambda self, params: time.sleep(0.02) or summarise(self, params))
    model = nn.Linear(4, 2)
    watcher = nbw.watch(model)
    for _ in range(40):
        model(torch.randn(8, 4)).sum().backward()
        model.zero_grad()
    assert len(watcher.history.steps("weight", of="grad")) >= 3
    assert watcher.pacer.capture_seconds >= 0.02, watcher.pacer.capture_seconds
