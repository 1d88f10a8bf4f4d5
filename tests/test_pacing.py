"""Automatic pacing against a fake clock: captures cost about the budget, whatever the step time."""
import pytest

from nbweights.capture.pacing import Pacer


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(step_seconds, capture_seconds, steps=5000, budget=0.02):
    clock = FakeClock()
    pacer = Pacer("auto", budget=budget, clock=clock)
    started = pacer.start()
    clock.now += capture_seconds
    pacer.done(0, started)
    captured, capture_time = 0, 0.0
    for step in range(1, steps + 1):
        clock.now += step_seconds
        if step >= pacer.next_step:
            started = pacer.start()
            clock.now += capture_seconds
            pacer.done(step, started)
            captured += 1
            capture_time += capture_seconds
    return captured, capture_time / (steps * step_seconds)


@pytest.mark.parametrize("step_seconds", [0.0003, 0.01, 3.0])
def test_auto_keeps_capture_cost_near_the_budget(step_seconds):
    captured, overhead = simulate(step_seconds, capture_seconds=0.002)
    assert overhead <= 0.025
    if step_seconds >= 0.1:
        assert captured == 5000  # slow steps: every step is captured
    else:
        assert captured >= 5000 * step_seconds * 0.02 / 0.002 * 0.7


def test_every_n_is_exact():
    clock = FakeClock()
    pacer = Pacer(4, clock=clock)
    assert pacer.next_step == 4
    pacer.done(4, pacer.start())
    assert pacer.next_step == 8


def test_budget_must_be_a_fraction():
    with pytest.raises(ValueError, match="budget="):
        Pacer("auto", budget=2)
