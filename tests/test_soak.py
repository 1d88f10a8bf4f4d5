"""Soak: thousands of KeyboardInterrupts at random lines of capture while a model trains under a
tight ``max_bytes``; the history stays consistent, saves and loads, and close() leaves nothing.

The interrupts come from a ``sys.settrace`` tracer that raises KeyboardInterrupt at a random
line event inside ``nbweights/capture/`` and ``nbweights/summaries.py`` (seeded: the same
lines each run), as a person pressing "stop" mid-capture would. History code is not traced:
an interrupt inside ``Timeline.thin`` is the history's own guarantee (issue #12, history half).
"""
import random
import sys
import threading
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw

PACKAGE = Path(nbw.__file__).resolve().parent
TRACED_FILES = {str(p) for p in (PACKAGE / "capture").glob("*.py")} | {str(PACKAGE / "summaries.py")}
#: Line events between interrupts at most: a captured step runs about 1,200 in these files, so
#: an interrupt lands anywhere in a step and about one step in three completes.
SPAN = 1200


class Interrupter:
    """A tracer raising KeyboardInterrupt at a random line of the traced files, again and again."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.countdown = self.random.randint(1, SPAN)
        self.raised = 0
        self.lines = 0

    def __call__(self, frame, event, arg):
        return self._line if frame.f_code.co_filename in TRACED_FILES else None

    def _line(self, frame, event, arg):
        if event == "line":
            self.lines += 1
            self.countdown -= 1
            if self.countdown <= 0:
                self.countdown = self.random.randint(1, SPAN)
                self.raised += 1
                raise KeyboardInterrupt  # the tracer is unset by Python: armed again by the loop
        return self._line


def model_and_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.Tanh())
    generator = torch.Generator().manual_seed(0)
    return model, [torch.randn(4, 1, 6, 6, generator=generator) for _ in range(8)]


def assert_consistent(history):
    """Every store's steps never decrease and every read agrees with them in length."""
    for group in ("weight", "grad", "activation"):
        for name in history.names_of(group):
            steps = history.steps(name, of=group)
            assert np.all(np.diff(steps) >= 0), (group, name, steps)
            stats = history.stats(name, of=group)
            assert all(len(values) == len(steps) for values in stats.values()), (group, name)
            kept, ranges, counts = history.histograms(name, of=group)
            assert np.array_equal(kept, steps) and counts.shape == (len(steps), history.bins)
            if len(steps):
                history.histogram(name, of=group)
    assert np.all(history.steps(history.names[0], of="grad") >= 1)  # no gradient before the first update
    for name in history.names:
        steps = history.picture_steps(name)
        assert np.all(np.diff(steps) >= 0)
        if len(steps):
            assert history.picture(name).step == steps[-1]
    for name in history.feature_map_names:
        history.feature_maps(name)
    for name in history.metric_names:
        steps, values = history.metric(name)
        assert np.all(np.diff(steps) >= 0) and len(steps) == len(values)


def hooks_left(model, optimizer):
    left = len(optimizer._optimizer_step_pre_hooks) + len(optimizer._optimizer_step_post_hooks)
    for module in model.modules():
        left += len(module._forward_pre_hooks) + len(module._forward_hooks)
    return left + sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())


@pytest.fixture
def one_thread():
    """Tiny ops on many threads of a shared machine cost more than the ops: one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("with_optimizer, interrupts", [(True, 2000), (False, 600)])
def test_interrupts_anywhere_in_capture_leave_a_sound_history(with_optimizer, interrupts, tmp_path, one_thread):
    widgets_before = len(ipywidgets.Widget.widgets)
    model, batches = model_and_batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    w = nbw.watch(model, optimizer if with_optimizer else None, every=1, activations=True, max_bytes=48 * 1024)
    w.probe(batches[0][:1])
    dashboard = w.dashboard  # redraws on the training thread, here at most once in two seconds
    dashboard.max_fps = 0.5
    interrupter = Interrupter(seed=1 if with_optimizer else 2)
    steps = 0
    while interrupter.raised < interrupts:
        x = batches[steps % len(batches)]
        sys.settrace(interrupter)
        try:
            optimizer.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            optimizer.step()
            if steps % 25 == 0:
                w.log(loss=loss.item())
                w.snapshot()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        steps += 1
    print(f"\n{interrupter.raised} interrupts in {steps} steps ({interrupter.lines} traced lines); "
          f"history {w.history.nbytes} bytes of max_bytes {w.history.max_bytes}, "
          f"{len(w.history.steps('0.weight'))} weight snapshots kept")

    assert w.failures == {}  # an interrupt is the user's, never taken for a capture failure
    assert len(w.history.steps("0.weight")) > 2 and w.step > interrupts // 10  # training and capture went on
    assert_consistent(w.history)
    w.health()
    dashboard.redraw(full=True)
    path = tmp_path / "soak.nbw"
    w.save(path)
    loaded = nbw.load(path)
    assert loaded.names == w.history.names
    np.testing.assert_array_equal(loaded.steps("0.weight"), w.history.steps("0.weight"))
    assert_consistent(loaded)

    w.close(release=True)
    assert hooks_left(model, optimizer) == 0
    assert not any(t.name == "nbweights-redraw" and t.is_alive() for t in threading.enumerate())
    assert len(ipywidgets.Widget.widgets) == widgets_before
