"""Health signals read from a history: where and when training went wrong, in words.

Every signal is computed from recorded summaries only, so it works on a loaded ``.nbw`` file
as well as live. Thresholds are documented in :class:`Thresholds` and adjustable.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .history import History

KINDS = ("nonfinite", "dead", "vanishing", "exploding", "saturated", "sparse", "stalled")


@dataclass(frozen=True)
class Thresholds:
    """When a signal fires. A condition must hold for ``patience`` consecutive captures
    (non-finite values fire at once).

    - exploding: update ratio ‖Δw‖/‖w‖ above ``exploding_update`` (healthy is near 1e-3), not
      falling (a weight growing from zero starts near 1 and falls as 1/t), and the weights' norm
      multiplied by ``exploding_growth`` or more per capture;
      update-ratio signals look at weights of two or more dimensions only;
    - vanishing: update ratio below ``vanishing_update`` while other layers learn, or gradient
      size per element below ``vanishing_gradient`` times the median weight matrix's at that step
      (weight matrices and kernels only: norm gains and biases have gradients of another scale);
    - stalled: weights that do not change at all (update ratio below ``stalled_update``);
    - dead: at least ``dead_fraction`` of a module's units output exactly zero for a whole batch;
    - saturated: at least ``saturated_fraction`` of tanh/sigmoid outputs within 1 % of their limits;
    - sparse: at least ``sparse_fraction`` of a weight's elements exactly zero (after step 0).
    """

    exploding_update: float = 0.1
    exploding_growth: float = 1.25
    vanishing_update: float = 1e-5
    vanishing_gradient: float = 1e-3
    stalled_update: float = 1e-10
    dead_fraction: float = 0.5
    saturated_fraction: float = 0.5
    sparse_fraction: float = 0.9
    patience: int = 3


@dataclass(frozen=True)
class Signal:
    """One health finding: what (``kind``), where (``name``), since when (``step``), how much."""

    kind: str
    name: str
    step: int
    value: float
    message: str

    def __getitem__(self, key: str):
        return getattr(self, key)


def _first_run(condition: np.ndarray, patience: int) -> int | None:
    """Index where ``condition`` first holds ``patience`` times in a row (None if never)."""
    run = 0
    for index, holds in enumerate(condition):
        run = run + 1 if holds else 0
        if run >= patience:
            return index - patience + 1
    return None


def find_signals(history: History, thresholds: Thresholds = Thresholds()) -> list[Signal]:
    """Every signal that fired, oldest first (one per kind and tensor, at its first step)."""
    signals: list[Signal] = []

    def fire(kind: str, name: str, steps: np.ndarray, values: np.ndarray, condition: np.ndarray,
             patience: int, message: str) -> None:
        index = _first_run(condition, patience)
        if index is not None:
            value = float(values[index])
            signals.append(Signal(kind, name, int(steps[index]), value,
                                  message.format(name=name, step=int(steps[index]), value=value)))

    # Gradient size per element (RMS), so that a 50k x 768 embedding and a 768-wide head compare;
    # only weight matrices and kernels: norm gains and biases have gradients of another scale.
    matrices = [name for name in history.names if len(history.shape(name)) >= 2 and np.prod(history.shape(name)) > 0]
    grad_norms = {name: history.stats(name, of="grad")["norm"] / np.sqrt(float(np.prod(history.shape(name))))
                  for name in matrices}
    grad_steps = {name: history.steps(name, of="grad") for name in history.names}
    p = thresholds.patience
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps (no gradients yet)
        # Every parameter's gradients are recorded at the same steps, so they stack.
        # Relative to the median matrix, not the largest: one big-gradient head (a classifier's last
        # layer early in training) made every healthy layer of a ViT read as vanishing.
        typical_grad = np.nanmedian(np.vstack(list(grad_norms.values())), axis=0) \
            if grad_norms and len(next(iter(grad_norms.values()))) else None
        for name in history.names:
            if 0 in history.shape(name):  # no elements: no norm, ratio or fraction says anything
                continue
            steps, stats = history.steps(name), history.stats(name)
            fire("nonfinite", name, steps, stats["nonfinite"], stats["nonfinite"] > 0, 1,
                 "{name}: {value:.0f} NaN/Inf weights from step {step}")
            grads = history.stats(name, of="grad")
            fire("nonfinite", name + " (gradient)", grad_steps[name], grads["nonfinite"], grads["nonfinite"] > 0, 1,
                 "{name}: {value:.0f} NaN/Inf values from step {step}")
            # The update ratio says something of weight matrices and kernels; a bias or norm
            # scale starts near zero or one, so its ratio says little.
            ratio = stats["update_ratio"] if len(history.shape(name)) >= 2 else np.full(len(steps), np.nan)
            # Explosion keeps updates as large as the weights while they grow; a weight growing
            # from zero (zero initialisation) also starts with ratios near 1, but they fall as 1/t.
            not_falling = ~(ratio < 0.9 * np.concatenate([[np.nan], ratio[:-1]]))
            # And the weights grow fast: large early updates of a freshly initialised head (ResNet's fc
            # with momentum) move the weights about without blowing them up.
            norm = stats["norm"]
            growing = ~(norm < thresholds.exploding_growth * np.concatenate([[np.nan], norm[:-1]]))
            fire("exploding", name, steps, ratio, (ratio > thresholds.exploding_update) & not_falling & growing, p,
                 "{name}: updates of {value:.2g} of the weights' size at step {step} (healthy is ~1e-3); "
                 "lower the learning rate")
            fire("stalled", name, steps, ratio, ratio < thresholds.stalled_update, p,
                 "{name}: weights stopped changing at step {step}")
            tiny = (ratio >= thresholds.stalled_update) & (ratio < thresholds.vanishing_update)
            if typical_grad is not None and name in grad_norms:
                relative = grad_norms[name] / typical_grad
                tiny_grad = relative < thresholds.vanishing_gradient
                fire("vanishing", name, grad_steps[name], relative, tiny_grad, p,
                     "{name}: gradient {value:.2g} of the median layer's (per element) from step {step}; "
                     "earlier layers barely learn")
            if not any(s.kind == "vanishing" and s.name == name for s in signals):
                fire("vanishing", name, steps, ratio, tiny, p,
                     "{name}: updates of only {value:.2g} of the weights' size from step {step}")
            zeros = stats["zero_fraction"]
            fire("sparse", name, steps, zeros, (zeros >= thresholds.sparse_fraction) & (steps > 0), p,
                 "{name}: {value:.0%} of the weights are exactly zero from step {step}")
        for name in history.names_of("activation"):
            steps, stats = history.steps(name, of="activation"), history.stats(name, of="activation")
            fire("nonfinite", name + " (output)", steps, stats["nonfinite"], stats["nonfinite"] > 0, 1,
                 "{name}: NaN/Inf from step {step}")
            if "dead_fraction" in stats:
                dead = stats["dead_fraction"]
                fire("dead", name, steps, dead, dead >= thresholds.dead_fraction, p,
                     "{name}: {value:.0%} of units output zero for a whole batch from step {step}")
                saturated = stats["saturated_fraction"]
                fire("saturated", name, steps, saturated, saturated >= thresholds.saturated_fraction, p,
                     "{name}: {value:.0%} of outputs saturated from step {step}")
    signals.sort(key=lambda s: (s.step, KINDS.index(s.kind)))
    return signals


#: How each kind reads in a table cell.
LABELS = {"nonfinite": "NaN/Inf", "dead": "dead units", "vanishing": "vanishing", "exploding": "exploding",
          "saturated": "saturated", "sparse": "sparse", "stalled": "stalled"}
#: Suffixes find_signals adds to a name for a parameter's gradient and a module's output.
_SUFFIXES = (" (gradient)", " (output)")


def subject(signal: Signal) -> str:
    """The parameter or module a signal is about (its gradient's and output's signals included)."""
    for suffix in _SUFFIXES:
        if signal.name.endswith(suffix):
            return signal.name[: -len(suffix)]
    return signal.name


def by_subject(signals: list[Signal], step: int | None = None) -> dict[str, list[Signal]]:
    """Signals that fired at or before ``step`` (None: all), grouped by :func:`subject`."""
    grouped: dict[str, list[Signal]] = {}
    for signal in signals:
        if step is None or signal.step <= step:
            grouped.setdefault(subject(signal), []).append(signal)
    return grouped


class SignalSearch:
    """The signals of a history, searched again at most once per ``period`` seconds (less often
    when a search is slow: at most ``share`` of the time), so that every view reads one result.

    Live, a history changes at every capture; searching it costs a read of every summary, which
    the redraws must not pay more than once a second. ``clock`` is injectable for tests.
    """

    def __init__(self, thresholds: Thresholds | None = None, period: float = 1.0, share: float = 0.02,
                 clock=None):
        import time
        self.thresholds = thresholds or Thresholds()
        self.period, self.share = float(period), float(share)
        self._clock = clock or time.perf_counter
        self._next = float("-inf")
        self._version: object = None
        self.signals: list[Signal] = []
        self.searches = 0

    def current(self, history: History, force: bool = False) -> list[Signal]:
        """The latest search's signals, searched again if due (or ``force``) and the history changed."""
        now = self._clock()
        if history.version != self._version and (force or now >= self._next):
            started = self._clock()
            self.signals = find_signals(history, self.thresholds)
            self.searches += 1
            self._version = history.version
            self._next = now + max(self.period, (self._clock() - started) / self.share)
        return self.signals

    def expire(self) -> None:
        """Search at the next :meth:`current` call if the history changed (after a cell ends)."""
        self._next = float("-inf")
