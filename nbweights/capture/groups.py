"""The parameters of one device, summarised together with one transfer to the host per capture."""
from __future__ import annotations

import functools
import weakref
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .pictures import PictureLimits, picture_of
from ..summaries import FIELDS, Summary, SummaryPlan, add_implicit_zeros, finish, readable, summarize, take_sample

Captured = tuple[Summary, Summary | None, list[tuple[int, str, np.ndarray]]]
#: Summary on the device, rows of the gradients present, their plan, the tensors summarised
#: (a sparse gradient's stored values) and ``(position, dense numel)`` of each sparse one.
PendingGrads = tuple[torch.Tensor, tuple[int, ...], SummaryPlan, list[torch.Tensor], list[tuple[int, int]]]
#: Plans kept for sparse gradients, whose stored values change in number from step to step.
MAX_GRAD_PLANS = 16


def empty_summary(count: int, bins: int) -> Summary:
    """A summary of ``count`` tensors that says nothing was seen (NaN fields, zero counts)."""
    fields = np.full((count, len(FIELDS)), np.nan)
    return Summary(fields, np.zeros((count, bins), np.float32), np.zeros(count, np.float32))


@torch.no_grad()  # a decorator, not a with block: see summaries.take_sample
def _to_host(parts: list[torch.Tensor], values: list[torch.Tensor] | torch.Tensor, pictures: list) -> np.ndarray:
    """The one synchronisation of a capture: summaries, small tensors whole (or the part of the
    sample that holds them, float32 already) and pictures."""
    if isinstance(values, torch.Tensor):
        parts.append(values)
    elif values:
        flat = torch._C._nn.flatten_dense_tensors(values)
        parts.append((flat.abs() if flat.is_complex() else flat).float())
    parts.extend(data.reshape(-1) for _, _, data in pictures)
    return torch.cat(parts).cpu().numpy()


class ParameterGroup:
    """Parameters on one device: their sample plan, histogram ranges and pending gradients.

    ``rows`` are the positions of these parameters among all watched ones.
    """

    def __init__(self, rows: list[int], params: list[nn.Parameter], bins: int,
                 sample_size: int | None, limits: PictureLimits):
        self.rows = rows
        self.bins = bins
        self.limits = limits
        self.device = params[0].device
        self._refs = [weakref.ref(p) for p in params]
        self._sample_size = sample_size
        self.plan = SummaryPlan([p.numel() for p in params], sample_size, self.device, seed=rows[0])
        #: Weights then gradients, summarised together when every gradient is there (the
        #: usual capture after an optimizer step): one fixed cost for both.
        self._joint_plan = SummaryPlan.joined(self.plan, self.plan)
        # Which picture each parameter gets depends only on its shape and dtype: decided once.
        # The "values" ones (small tensors, kept whole) are copied by one call at each capture.
        kinds = [None if found is None else found[0] for found in (picture_of(p, limits) for p in params)]
        self._value_rows = [i for i, kind in enumerate(kinds) if kind == "values"]
        self._picture_rows = [i for i, kind in enumerate(kinds) if kind not in (None, "values")]
        self._value_sizes = [params[i].numel() for i in self._value_rows]
        #: Whether the sample starts with the "values" tensors whole: they are then read from it.
        self._values_in_sample = bool(self._value_rows) and self._value_rows == self.plan.order[:len(
            self._value_rows)] and set(self._value_rows) <= set(self.plan.whole)
        self._weight_ranges = torch.zeros(len(params), device=self.device)
        self._grad_ranges = torch.zeros(len(params), device=self.device)
        self._joint_ranges: torch.Tensor | None = None  # weights' then gradients' ranges, when current
        self._grad_plans: dict[tuple[int, ...], SummaryPlan] = {}
        self._before: torch.Tensor | None = None
        self._pending_grads: tuple[torch.Tensor, Any] | None = None
        self._armed = False
        self._grads_seen = self._grads_expected = 0
        self._not_stepped: list[int] = []

    @classmethod
    def split(cls, named: Sequence[tuple[str, nn.Parameter]], bins: int, sample_size: int | None,
              limits: PictureLimits, rows: Sequence[int] | None = None) -> list["ParameterGroup"]:
        """One group per device and dtype: each is summarised by batched operations on one
        device, non-float32 tensors apart (cast to float32 in their own sample).
        ``rows[i]`` is the row of ``named[i]`` (default: its position)."""
        rows = list(range(len(named))) if rows is None else list(rows)
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
        for i, (_, param) in enumerate(named):
            by_kind[param.device, param.dtype].append(i)
        return [cls([rows[i] for i in positions], [named[i][1] for i in positions], bins, sample_size, limits)
                for positions in by_kind.values()]

    def tensors(self) -> list[nn.Parameter] | None:
        """The live parameters, or None once any was garbage collected."""
        params = [ref() for ref in self._refs]
        return None if any(p is None for p in params) else params

    # ----- moments before the capture ----------------------------------------------------
    def remember_before_step(self, stepped: set[int] | None = None) -> None:
        """Keep the sample of the weights as they are before an update (for the update ratio).

        ``stepped``: ids of the parameters the optimizer updates; the others (a GAN's other
        half, stepped by another optimizer) get no update ratio at this capture, not a zero.
        """
        params = self.tensors()
        if params is not None:
            self._before = take_sample(self.plan, params)
            self._not_stepped = [] if stepped is None else [i for i, p in enumerate(params) if id(p) not in stepped]

    def watch_gradients(self, hook: Callable[["ParameterGroup", torch.Tensor], None]) -> list[Any]:
        """Register ``hook(group, param)`` for when each gradient is complete (no optimizer): it
        calls :meth:`gradient_ready`, contained by the watcher."""
        params = self.tensors() or []
        return [p.register_post_accumulate_grad_hook(functools.partial(hook, self))
                for p in params if p.requires_grad]

    def arm_gradients(self) -> None:
        """Summarise the gradients of the coming backward pass, once all have arrived."""
        self._armed, self._grads_seen = True, 0
        self._grads_expected = sum(1 for ref in self._refs if ref() is not None and ref().requires_grad)

    @property
    def armed(self) -> bool:
        """Whether the gradients of the backward pass running now are to be summarised."""
        return self._armed

    def gradient_ready(self, param: torch.Tensor) -> None:
        if not self._armed:
            return
        self._grads_seen += 1
        if self._grads_seen >= self._grads_expected:
            self._armed = False
            params = self.tensors()
            if params is not None:
                # Summarised now, not at the next forward: zero_grad() may free them before then.
                pending = self._grads_on_device(params)
                self._pending_grads = None if pending is None else \
                    self._finish_grads(len(params), pending, pending[0].cpu().numpy())
                self._before = take_sample(self.plan, params)

    # ----- the capture -------------------------------------------------------------------
    def _grads_on_device(self, params: list[nn.Parameter]) -> PendingGrads | None:
        present = tuple(i for i, p in enumerate(params) if p.grad is not None)
        if not present:
            return None
        grads = [readable(params[i].grad) for i in present]
        sparse = [(k, params[i].numel()) for k, i in enumerate(present) if params[i].grad.is_sparse]
        if len(present) == len(params) and not sparse:
            plan, ranges = self.plan, self._grad_ranges
        else:
            key = (present, tuple(g.numel() for g in grads) if sparse else ())
            if key not in self._grad_plans:
                if len(self._grad_plans) >= MAX_GRAD_PLANS:
                    self._grad_plans.clear()
                self._grad_plans[key] = SummaryPlan([g.numel() for g in grads], self._sample_size,
                                                    self.device, seed=self.rows[0])
            plan, ranges = self._grad_plans[key], self._grad_ranges[list(present)]
        return summarize(plan, grads, ranges, self.bins), present, plan, grads, sparse

    def _finish_grads(self, count: int, pending: PendingGrads, host: np.ndarray) -> Summary:
        packed_device, present, plan, grads, sparse = pending
        summary, ranges = finish(plan, grads, packed_device, host.reshape(len(present), -1), self.bins)
        for position, dense_numel in sparse:
            add_implicit_zeros(summary, position, dense_numel, self.bins)
        full = empty_summary(count, self.bins)
        rows = list(present)
        full.fields[rows], full.counts[rows], full.ranges[rows] = summary.fields, summary.counts, summary.ranges
        self._grad_ranges[rows] = ranges
        return full

    def capture(self, with_grads: bool) -> Captured | None:
        """Summaries of weights and gradients, and pictures, read with one host transfer."""
        params = self.tensors()
        if params is None:
            return None
        count = len(params)
        grad_summary, grads_device, plan, tensors, ranges = None, None, self.plan, params, self._weight_ranges
        if with_grads:
            grad_summary = self._pending_grads
            grads = [p.grad for p in params]
            if grad_summary is None and all(g is not None and not g.is_sparse for g in grads):
                plan, tensors = self._joint_plan, params + grads
                ranges = self._joint_ranges if self._joint_ranges is not None else \
                    torch.cat([self._weight_ranges, self._grad_ranges])
            elif grad_summary is None:
                grads_device = self._grads_on_device(params)
                if grads_device is None:
                    grad_summary = empty_summary(count, self.bins)
        joint = plan is self._joint_plan
        sample = take_sample(plan, tensors) if self._values_in_sample else None
        packed_device = summarize(plan, tensors, ranges, self.bins, self._before, sample=sample)
        self._pending_grads = None
        if not joint:  # the ranges of one side change alone: the joint ones are built again
            self._joint_ranges = None
        parts = [packed_device.reshape(-1)]
        if grads_device is not None:
            parts.append(grads_device[0].reshape(-1))
        found = [(i, picture_of(params[i], self.limits)) for i in self._picture_rows]
        pictures = [(i, picture[0], picture[1]) for i, picture in found if picture is not None]
        values = sample[:sum(self._value_sizes)] if sample is not None else [params[i] for i in self._value_rows]
        host = _to_host(parts, values, pictures)
        offset = packed_device.numel()
        packed = host[:offset].reshape(len(packed_device), -1)
        if joint:
            both, ranges = finish(plan, tensors, packed_device, packed, self.bins, self._before)
            weights = Summary(both.fields[:count], both.counts[:count], both.ranges[:count])
            grad_summary = Summary(both.fields[count:], both.counts[count:], both.ranges[count:])
            self._weight_ranges, self._grad_ranges = ranges[:count], ranges[count:]
            self._joint_ranges = ranges  # both, for the next joint capture: no concatenation
        else:
            weights, self._weight_ranges = finish(plan, params, packed_device, packed, self.bins, self._before)
        if self._not_stepped:
            weights.fields[self._not_stepped, FIELDS.index("delta_sq")] = np.nan
        self._before, self._not_stepped = None, []
        if grads_device is not None:
            size = grads_device[0].numel()
            grad_summary = self._finish_grads(count, grads_device, host[offset:offset + size])
            offset += size
        kept = []
        for i, size in zip(self._value_rows, self._value_sizes):
            kept.append((i, "values", host[offset:offset + size].reshape(params[i].shape)))
            offset += size
        for i, kind, data in pictures:
            kept.append((i, kind, host[offset:offset + data.numel()].reshape(data.shape)))
            offset += data.numel()
        if pictures:  # the values alone are in row order already
            kept.sort(key=lambda item: item[0])
        return weights, grad_summary, kept
