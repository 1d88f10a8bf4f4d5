"""Checks that a history is whole: every read works and agrees with the others, and every view
draws (shared by the file-format, fuzz and interrupt tests)."""
from __future__ import annotations

import logging

import numpy as np

from nbweights.health import find_signals
from nbweights.history import GROUPS


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage() + (f" {record.exc_info[1]!r}" if record.exc_info else ""))


def check_reads(history) -> None:
    """Every read of every recorded name, group, picture, metric and feature map, and health."""
    bins = history.bins
    for group in GROUPS:
        for name in history.names_of(group):
            history.shape(name, of=group)
            steps = history.steps(name, of=group)
            assert np.all(np.diff(steps) >= 0), f"{group} {name}: steps decrease"
            stats = history.stats(name, of=group)
            assert all(len(v) == len(steps) for v in stats.values()), f"{group} {name}: stats misaligned"
            series_steps, ranges, counts = history.histograms(name, of=group)
            assert counts.shape == (len(steps), bins) and len(ranges) == len(steps)
            np.testing.assert_array_equal(series_steps, steps)
            if len(steps):
                for step in (None, int(steps[0]), np.int64(steps[-1])):
                    edges, counts = history.histogram(name, step=step, of=group)
                    assert edges.shape == (bins + 1,) and counts.shape == (bins,)
    for name in history.names:
        picture, series = history.picture(name), history.picture_series(name)
        assert (picture is None) == (series is None)
        if picture is not None:
            kind, steps, arrays = series
            assert kind == picture.kind and len(steps) == len(arrays) >= 1
            assert arrays.shape[1:] == picture.array.shape and picture.step == steps[-1]
            np.testing.assert_array_equal(history.picture_steps(name), steps)
            assert history.picture(name, step=int(steps[0])).step == steps[0]
    for name in history.metric_names:
        steps, values = history.metric(name)
        assert len(steps) == len(values) >= 1 and np.all(np.diff(steps) >= 0)
    for name in history.feature_map_names:
        maps = history.feature_maps(name)
        assert maps.array.ndim == 3 and min(maps.array.shape) >= 1
    assert history.nbytes >= 0
    history.latest_step
    find_signals(history)


def check_views(history) -> None:
    """Build the dashboard of ``history`` and draw every panel in full: no view may fail."""
    from nbweights.ui.dashboard import Dashboard
    errors = _Errors()
    logger = logging.getLogger("nbweights")
    logger.addHandler(errors)
    try:
        dashboard = Dashboard(history)
        dashboard.redraw(full=True)
        dashboard.close()
    finally:
        logger.removeHandler(errors)
    assert not errors.messages, errors.messages


def check_readable(history, views: bool = True) -> None:
    check_reads(history)
    if views:
        check_views(history)
