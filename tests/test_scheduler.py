"""The redraw scheduler against a fake clock: budgets respected, nothing left stale."""
import pytest

from nbweights.ui.scheduler import RedrawScheduler


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run(scheduler, clock, costs, redraws, every=1 / 12, sent_per_part=1000):
    """Simulate redraws ``every`` seconds; each part costs ``costs[part]`` seconds. Returns when
    each part was drawn."""
    drawn = {name: [] for name in costs}
    for _ in range(redraws):
        clock.now += every
        for part in scheduler.parts(sent=0):
            drawn[part].append(clock.now)
            clock.now += costs[part]
            scheduler.drawn(part, costs[part], sent_per_part)
    return drawn


def test_every_part_is_drawn_within_the_stale_limit_even_when_each_costs_far_more_than_the_budget():
    clock = FakeClock()
    costs = {"pictures": 0.05, "metrics": 0.004, "table": 0.03, "health": 0.02, "overview": 0.04}
    scheduler = RedrawScheduler({name: 0.0 for name in costs}, budget=0.001, byte_budget=64 * 1024,
                                stale_after=2.0, clock=clock)
    drawn = run(scheduler, clock, costs, redraws=12 * 30)
    for name, times in drawn.items():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert times and times[0] < 2.5 and max(gaps) < 2.0 + 1.0, (name, max(gaps))
    # And the budget still holds on average: far less time in parts than in the loop.
    spent = sum(len(times) * costs[name] for name, times in drawn.items())
    assert spent / clock.now < 0.2


def test_cheap_parts_are_drawn_at_every_redraw_within_the_budget():
    clock = FakeClock()
    scheduler = RedrawScheduler({"metrics": 0.0, "status": 0.0}, budget=0.002, byte_budget=64 * 1024, clock=clock)
    drawn = run(scheduler, clock, {"metrics": 0.0003, "status": 0.0002}, redraws=100)
    assert len(drawn["metrics"]) == len(drawn["status"]) == 100


def test_periods_space_a_part_and_full_draws_everything_due():
    clock = FakeClock()
    scheduler = RedrawScheduler({"table": 1.0, "status": 0.5}, budget=1.0, byte_budget=64 * 1024, clock=clock)
    drawn = run(scheduler, clock, {"table": 0.0, "status": 0.0}, redraws=120, every=0.05)  # 6 s
    assert 5 <= len(drawn["table"]) <= 7 and 11 <= len(drawn["status"]) <= 13
    assert sorted(scheduler.parts(full=True)) == ["status", "table"]  # due or not


def test_the_byte_budget_stops_a_redraw_but_not_a_stale_part():
    clock = FakeClock()
    scheduler = RedrawScheduler({"a": 0.0, "b": 0.0, "c": 0.0}, budget=1.0, byte_budget=10_000, clock=clock)
    for part in scheduler.parts(sent=0):  # first redraw: everything is stale, but one past the budget
        scheduler.drawn(part, 0.0, 20_000)
    clock.now += 0.1
    parts = list(scheduler.parts(sent=50_000))  # over budget already: only a stale part, one
    assert len(parts) == 1


def test_expire_brings_a_part_forward():
    clock = FakeClock()
    scheduler = RedrawScheduler({"pictures": 5.0}, budget=1.0, byte_budget=1000, clock=clock)
    for part in scheduler.parts():
        scheduler.drawn(part, 0.0, 0)
    clock.now += 0.1
    assert list(scheduler.parts()) == []
    scheduler.expire("pictures")
    assert list(scheduler.parts()) == ["pictures"]


@pytest.mark.parametrize("bad", [{"budget": 0}, {"byte_budget": -1}, {"stale_after": 0}])
def test_bad_budgets_are_refused(bad):
    options = {"budget": 0.001, "byte_budget": 1000, "stale_after": 2.0, **bad}
    with pytest.raises(ValueError, match="must be positive"):
        RedrawScheduler({"a": 0.0}, **options)
