"""The watched parameters as the model holds them now, in per-device groups.

Parameters are looked up by qualified name at each capture, so one replaced by a new object
(``model.fc.weight = nn.Parameter(...)``), converted (``model.double()``) or resized is recorded
as it is now, and one that went away is named once. A group whose capture raises is searched
for the parameters that fail alone; those are named in ``failures`` and left out from then on,
the others go on being recorded.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
from torch import nn

from .containment import log, record_failure
from .groups import ParameterGroup
from .pictures import PictureLimits
from ..summaries import readable


def _parameter(model: nn.Module, name: str) -> nn.Parameter | None:
    """The model's parameter of that qualified name now, or None if it has none."""
    try:
        return model.get_parameter(name)
    except AttributeError:
        return None


class LiveParameters:
    """Per-device :class:`ParameterGroup` of the watched names, rebuilt when the model changes.

    ``gradient_hook(group, param)``, if given (no optimizer), is hooked to every parameter's
    completed gradient; ``grad_handles`` holds those hooks.
    """

    def __init__(self, names: list[str], bins: int, sample_size: int | None, limits: PictureLimits,
                 failures: dict[str, str], gradient_hook: Callable[[ParameterGroup, torch.Tensor], None] | None):
        self.names, self.bins, self._sample_size, self._limits = names, bins, sample_size, limits
        self.failures = failures
        self.groups: list[ParameterGroup] = []
        self.grad_handles: list[Any] = []
        self._gradient_hook = gradient_hook
        #: (parameter, numel, device) of each watched name when the groups were built.
        self._layout: list[tuple[weakref.ref, int, torch.device] | None] | None = None
        self._excluded: set[str] = set()  # names whose capture failed: left out from then on

    @property
    def regrouping(self) -> bool:
        """Whether a failure asked for the groups to be built again."""
        return self._layout is None

    def remove_hooks(self) -> None:
        for handle in self.grad_handles:
            handle.remove()
        self.grad_handles.clear()

    def sync(self, model: nn.Module, step: int) -> bool:
        """Group the model's parameters as they are now, looked up by name: a parameter replaced
        by a new object (``model.fc.weight = nn.Parameter(...)``), moved or resized is recorded
        as it is now; one that went away is said once. False if nothing is left to record."""
        live = [_parameter(model, name) for name in self.names]
        layout = [None if p is None else (weakref.ref(p), p.numel(), p.device) for p in live]
        if self._layout is not None and all(
                (a is None) == (b is None) and (a is None or (a[0]() is b[0]() and a[1:] == b[1:]))
                for a, b in zip(layout, self._layout)):
            return bool(self.groups)
        for name, now, before in zip(self.names, layout, self._layout or layout):
            if before is not None and now is None:
                record_failure(self.failures, name, LookupError(f"the model has no parameter {name!r} any more"),
                               step, "finding the parameter")
            elif before is not None and before[0]() is not now[0]():
                log.warning("nbweights: %s was replaced by a new Parameter at step %d; recording the new one",
                            name, step)
        kept = [row for row, p in enumerate(live) if p is not None and self.names[row] not in self._excluded]
        groups = ParameterGroup.split([(self.names[r], live[r]) for r in kept], self.bins,
                                      self._sample_size, self._limits, rows=kept) if kept else []
        if self._gradient_hook is not None:  # (no optimizer) hooks on the parameters now in the model
            self.remove_hooks()
            for group in groups:
                self.grad_handles.extend(group.watch_gradients(self._gradient_hook))
        self.groups, self._layout = groups, layout
        return bool(groups)

    def for_each(self, step: int, doing: str, action: Callable[[ParameterGroup], Any],
                 groups: list[ParameterGroup] | None = None) -> None:
        """``action(group)`` for each group; a group that fails is searched for the parameters
        that fail alone, which are named in :attr:`failures` and left out from then on."""
        for group in list(self.groups if groups is None else groups):
            try:
                action(group)
            except Exception as error:
                culprits = []
                for row, param in zip(group.rows, group.tensors() or []):
                    try:
                        ParameterGroup([row], [param], self.bins, self._sample_size,
                                       self._limits).capture(with_grads=True)
                    except Exception as alone:
                        culprits.append((row, alone))
                for row, reason in culprits or [(row, error) for row in group.rows]:
                    self._excluded.add(self.names[row])
                    record_failure(self.failures, self.names[row], reason, step, doing)
                self._layout = None  # regroup without them at the next capture

    def first_nonfinite(self) -> tuple[str, str] | None:
        """``(name, "weight" or "gradient")`` of the first NaN/Inf, or None."""
        for group in self.groups:
            params = group.tensors()
            if params is None:
                continue
            tensors = [(row, what, readable(t)) for row, p in zip(group.rows, params)
                       for what, t in (("weight", p.detach()), ("gradient", p.grad)) if t is not None]
            if bool(torch.isfinite(torch.stack([t.sum() for _, _, t in tensors])).all()):
                continue
            for row, what, tensor in tensors:
                if not bool(torch.isfinite(tensor).all()):
                    return self.names[row], what
        return None

