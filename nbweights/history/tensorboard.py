"""Export a recorded run to TensorBoard: every histogram and scalar at the step it was taken.

>>> nbw.export_tensorboard("run.nbw", "runs/run")     # or a History, or a Watcher
>>> # then: tensorboard --logdir runs

Histograms keep nbweights' own bins (a leading empty bucket below the first edge tells TensorBoard
where they start), so TensorBoard shows the same counts the dashboard did. Scalars: each tensor's
norm and NaN/Inf count, the update ratio of weights, the dead fraction of activations, and every
logged metric under its own name. TensorBoard is imported only here, when exporting.
"""
from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import numpy as np

from ..summaries import histogram_edges
from .store import GROUPS, History

#: Scalars written for each group: (statistic of ``History.stats``, tag prefix).
SCALARS = {
    "weight": (("norm", "weight_norm"), ("update_ratio", "update_ratio"), ("nonfinite", "weight_nonfinite")),
    "grad": (("norm", "grad_norm"), ("nonfinite", "grad_nonfinite")),
    "activation": (("norm", "activation_norm"), ("nonfinite", "activation_nonfinite"),
                   ("dead_fraction", "dead_fraction")),
}


class Exported(NamedTuple):
    """What :func:`export_tensorboard` wrote: event counts and the event file (``path``)."""

    histograms: int
    scalars: int
    path: str


def _history_of(source: Any) -> History:
    if isinstance(source, History):
        return source
    if isinstance(getattr(source, "history", None), History):  # a Watcher
        return source.history
    if isinstance(source, (str, os.PathLike)):
        from .fileformat import load_history
        return load_history(source)
    raise TypeError(f"export_tensorboard() expected a History, a Watcher or the path of a .nbw file, "
                    f"got {type(source).__name__}")


def _writer(logdir: str) -> Any:
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ImportError("exporting to TensorBoard needs the tensorboard package: "
                          "pip install nbweights[tensorboard]") from None
    return EventFileWriter(logdir), Event, HistogramProto, Summary


def export_tensorboard(history_or_path: Any, logdir: str | os.PathLike) -> Exported:
    """Write a run's histograms and scalars as TensorBoard events in ``logdir`` (created if
    needed; each export adds one event file, as each TensorBoard run does)."""
    history = _history_of(history_or_path)
    if not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(f"export_tensorboard() expected a directory path as logdir, got {type(logdir).__name__}")
    logdir = os.fspath(logdir)
    os.makedirs(logdir, exist_ok=True)
    existing = set(os.listdir(logdir))
    writer, Event, HistogramProto, Summary = _writer(logdir)
    created = sorted(set(os.listdir(logdir)) - existing)
    walltime = time.time()
    histograms = scalars = 0

    def write(step: int, value: Any) -> None:
        writer.add_event(Event(wall_time=walltime, step=int(step), summary=Summary(value=[value])))

    try:
        for group in GROUPS:
            for name in history.names_of(group):
                steps, ranges, counts = history.histograms(name, of=group)
                stats = history.stats(name, of=group)
                finite = stats["count"] - stats["nonfinite"]
                for t, step in enumerate(steps):
                    if not np.isfinite(stats["count"][t]):  # nothing was seen at this step
                        continue
                    edges = histogram_edges(ranges[t], history.bins)
                    histogram = HistogramProto(
                        min=float(stats["min"][t]), max=float(stats["max"][t]), num=float(finite[t]),
                        sum=float(stats["mean"][t] * finite[t]), sum_squares=float(stats["norm"][t] ** 2),
                        bucket_limit=[float(e) for e in edges], bucket=[0.0, *map(float, counts[t])])
                    write(step, Summary.Value(tag=f"{group}/{name}", histo=histogram))
                    histograms += 1
                    for stat, prefix in SCALARS[group]:
                        if stat in stats and np.isfinite(stats[stat][t]):
                            write(step, Summary.Value(tag=f"{prefix}/{name}", simple_value=float(stats[stat][t])))
                            scalars += 1
        for metric in history.metric_names:
            for step, value in zip(*history.metric(metric)):
                write(step, Summary.Value(tag=metric, simple_value=float(value)))
                scalars += 1
    finally:
        writer.close()
    return Exported(histograms, scalars, os.path.join(logdir, created[0]) if len(created) == 1 else logdir)
