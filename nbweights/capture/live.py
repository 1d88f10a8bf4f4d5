"""The watched parameters as the model holds them now, in groups summarised together.

Parameters are looked up by qualified name at each capture, so one replaced by a new object
(``model.fc.weight = nn.Parameter(...)``), converted (``model.double()``) or resized is recorded
as it is now, and one that went away is named once. A group whose capture raises is searched
for the parameters that fail alone; those are named in ``failures`` and left out from then on,
the others go on being recorded.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .containment import log, record_failure
from .groups import empty_summary
from ..summaries import readable

#: Builds the groups of some parameters: ``split(named, rows)``, ``rows[i]`` the row of ``named[i]``.
Split = Callable[[Sequence[tuple[str, nn.Parameter]], list[int]], list[Any]]
#: Parameters are found through the module that held them; every this many syncs, by their full
#: name from the model (a submodule replaced as a whole is seen then).
FULL_LOOKUP_EVERY = 64

Layout = tuple[weakref.ref, int, torch.device, torch.dtype]


def _layout(param: nn.Parameter | None) -> Layout | None:
    return None if param is None else (weakref.ref(param), param.numel(), param.device, param.dtype)


def _same(a: Layout | None, b: Layout | None) -> bool:
    return (a is None) == (b is None) and (a is None or (a[0]() is b[0]() and a[1:] == b[1:]))


def _key(params: Sequence[nn.Parameter | None]) -> tuple:
    """The parameters' layouts in one tuple that compares in one go, a parameter by the id of
    its weak reference: ``weakref.ref(p)`` hands back the one that exists already, and those of
    the kept layout stay alive, so an equal id is the same parameter and a new one a new id."""
    return tuple([None if p is None else (id(weakref.ref(p)), p.numel(), p.device, p.dtype) for p in params])


def _held(owner: tuple[weakref.ref, str]) -> nn.Parameter | None:
    module = owner[0]()
    return None if module is None else module._parameters.get(owner[1])


class LiveParameters:
    """The groups of the watched names, rebuilt when the model changes under them.

    ``gradient_hook(group, param)``, if given (no optimizer), is hooked to every parameter's
    completed gradient. With ``fixed`` (torch.distributed: every rank must build the same
    collectives), the groups are never rebuilt; a change is named in ``failures``.
    """

    def __init__(self, names: list[str], split: Split, bins: int, failures: dict[str, str],
                 gradient_hook: Callable[[Any, torch.Tensor], None] | None = None, fixed: bool = False):
        self.names, self._split, self.bins, self.failures, self.fixed = names, split, bins, failures, fixed
        self.groups: list[Any] = []
        self.grad_handles: list[Any] = []
        self._gradient_hook = gradient_hook
        self._layout: list[Layout | None] | None = None
        self._layout_key: tuple | None = None  # _key(self._layout), what each sync compares
        self._owners: list[tuple[weakref.ref, str] | None] = []
        self._syncs = 0
        self._synced_step: int | None = None
        self._excluded: set[str] = set()  # names whose capture failed: left out from then on

    def start(self, model: nn.Module, named: Sequence[tuple[str, nn.Parameter]]) -> None:
        """Group the parameters found at ``watch()`` (their order is the rows')."""
        self._find_owners(model)
        self._build([p for _, p in named])

    @property
    def one_group(self) -> bool:
        """Whether one group holds every watched row, in order (the common case: one device)."""
        return len(self.groups) == 1 and list(self.groups[0].rows) == list(range(len(self.names)))

    @property
    def regrouping(self) -> bool:
        """Whether a failure asked for the groups to be built again."""
        return self._layout is None

    def set_gradient_hook(self, hook: Callable[[Any, torch.Tensor], None] | None) -> None:
        """Hook ``hook`` (None: nothing) to the completed gradients of the current groups."""
        self.remove_hooks()
        self._gradient_hook = hook
        if hook is not None:
            for group in self.groups:
                self.grad_handles.extend(group.watch_gradients(hook))

    def remove_hooks(self) -> None:
        for handle in self.grad_handles:
            handle.remove()
        self.grad_handles.clear()

    # ----- following the model --------------------------------------------------------------
    def sync_before_update(self, model: nn.Module, step: int) -> bool:
        """:meth:`sync` before an optimizer's update; the capture right after it, of the same
        step, then reuses it (an update replaces no parameter)."""
        found = self.sync(model, step)
        self._synced_step = step
        return found

    def sync(self, model: nn.Module, step: int) -> bool:
        """Group the model's parameters as they are now: a parameter replaced by a new object,
        converted, moved or resized is recorded as it is now; one that went away is said once.
        False if nothing is left to record."""
        self._syncs += 1
        if self._syncs % FULL_LOOKUP_EVERY == 0:
            self._find_owners(model)
        if self._layout is not None and _key(self._lookup()) == self._layout_key:
            return bool(self.groups)
        self._find_owners(model)  # something changed: look every name up in the model again
        live = self._lookup()
        layout = [_layout(p) for p in live]
        for name, now, before in zip(self.names, layout, self._layout or layout):
            if before is not None and now is None:
                record_failure(self.failures, name, LookupError(f"the model has no parameter {name!r} any more"),
                               step, "finding the parameter")
            elif before is not None and before[0]() is not now[0]():
                log.warning("nbweights: %s was replaced by a new Parameter at step %d; recording the new one",
                            name, step)
        if self.fixed:  # the ranks' collectives stay as built: say what changed, record the rest
            for name, now, before in zip(self.names, layout, self._layout or layout):
                if now is not None and before is not None and not _same(now, before):
                    record_failure(self.failures, name, RuntimeError("changed under a distributed watch"),
                                   step, "following the parameter")
            self._set_layout(layout)
            return bool(self.groups)
        self._build(live)
        return bool(self.groups)

    def _find_owners(self, model: nn.Module) -> None:
        """The module holding each watched name, and its attribute there (None if absent)."""
        owners: list[tuple[weakref.ref, str] | None] = []
        for name in self.names:
            path, _, attr = name.rpartition(".")
            try:
                module = model.get_submodule(path) if path else model
            except AttributeError:
                owners.append(None)
                continue
            owners.append((weakref.ref(module), attr) if isinstance(module._parameters.get(attr), nn.Parameter)
                          else None)
        self._owners = owners

    def _lookup(self) -> list[nn.Parameter | None]:
        """The parameter now held under each name, through its owner module."""
        return [None if owner is None else _held(owner) for owner in self._owners]

    def _set_layout(self, layout: list[Layout | None]) -> None:
        self._layout = layout
        self._layout_key = _key([None if entry is None else entry[0]() for entry in layout])

    def _build(self, live: Sequence[nn.Parameter | None]) -> None:
        kept = [row for row, p in enumerate(live) if p is not None and self.names[row] not in self._excluded]
        self.groups = self._split([(self.names[r], live[r]) for r in kept], kept) if kept else []
        self._set_layout([_layout(p) for p in live])
        self.set_gradient_hook(self._gradient_hook)  # on the parameters now in the model

    # ----- running the groups, contained ----------------------------------------------------
    def capture(self, model: nn.Module, step: int) -> tuple[Any, Any, list] | None:
        """Weights, gradients (from step 1) and pictures ``(row, kind, data)`` of every watched
        row as ``model`` holds it now (NaN rows for what failed); None if nothing is left."""
        synced, self._synced_step = self._synced_step == step and self._layout is not None, None
        if not synced and not self.sync(model, step):
            return None
        if not self.groups:
            return None
        count, bins, with_grads = len(self.names), self.bins, step > 0
        if self.one_group:  # one device and dtype: its rows are all, in order
            found: list = []
            self.for_each(step, "summarising", lambda group: found.append(group.capture(with_grads)))
            if found:
                if found[0] is None:
                    return None  # garbage collected
                weights, grads, pictures = found[0]
                return weights, grads if grads is not None else empty_summary(count, bins), pictures
        parts: list = []

        def summarise(group: Any) -> None:
            captured = group.capture(with_grads)
            if captured is not None:
                parts.append((group.rows, captured))

        if not self.regrouping:
            self.for_each(step, "summarising", summarise)
        if self.regrouping:  # without what failed: the rest, now
            parts.clear()
            if not self.sync(model, step):
                return None
            self.for_each(step, "summarising", summarise)
        weights, grads, pictures = empty_summary(count, bins), empty_summary(count, bins), []
        for rows, (group_weights, group_grads, group_pictures) in parts:
            for whole, part in ((weights, group_weights), (grads, group_grads)):
                if part is not None:
                    whole.fields[rows], whole.counts[rows], whole.ranges[rows] = part.fields, part.counts, part.ranges
            pictures.extend((rows[i], kind, data) for i, kind, data in group_pictures)
        return weights, grads, pictures

    def for_each(self, step: int, doing: str, action: Callable[[Any], Any], groups: list[Any] | None = None) -> None:
        """``action(group)`` for each group; a group that fails is searched for the parameters
        that fail alone, which are named in :attr:`failures` and left out from then on."""
        for group in list(self.groups if groups is None else groups):
            try:
                action(group)
            except Exception as error:
                if self.fixed:  # nothing can be left out on one rank alone
                    record_failure(self.failures, "capture", error, step, doing)
                    continue
                culprits = []
                for row, param in zip(group.rows, group.tensors() or []):
                    try:
                        self._split([(self.names[row], param)], [row])[0].capture(with_grads=True)
                    except Exception as alone:
                        culprits.append((row, alone))
                for row, reason in culprits or [(row, error) for row in group.rows]:
                    self._excluded.add(self.names[row])
                    record_failure(self.failures, self.names[row], reason, step, doing)
                self._layout = None  # regroup without them at the next sync

    def first_nonfinite(self) -> tuple[str, str] | None:
        """``(name, "weight" or "gradient")`` of the first NaN/Inf, or None."""
        for group in self.groups:
            params = group.tensors()
            if params is None:
                continue
            tensors = [(row, what, readable(t)) for row, p in zip(group.rows, params)
                       for what, t in (("weight", p.detach()), ("gradient", p.grad)) if t is not None]
            if not tensors or bool(torch.isfinite(torch.stack([t.sum() for _, _, t in tensors])).all()):
                continue
            for row, what, tensor in tensors:
                if not bool(torch.isfinite(tensor).all()):
                    return self.names[row], what
        return None
