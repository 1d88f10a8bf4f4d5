"""Which parameters and modules to watch: names, glob patterns or module types."""
from __future__ import annotations

import fnmatch
from typing import Iterable, Union

from torch import nn

Selector = Union[str, type, Iterable[Union[str, type]], None]


def _as_list(selector: Selector, argument: str) -> list[Union[str, type]]:
    if isinstance(selector, (str, type)):
        items = [selector]
    else:
        try:
            items = list(selector)
        except TypeError:
            raise TypeError(f"{argument}= takes names, glob patterns or nn.Module types, "
                            f"got {type(selector).__name__}") from None
    for item in items:
        is_module_type = isinstance(item, type) and issubclass(item, nn.Module)
        if not isinstance(item, str) and not is_module_type:
            raise TypeError(f"{argument}= takes names, glob patterns or nn.Module types, got {item!r}")
    return items


def select_parameters(model: nn.Module, selector: Selector = None) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs in model order, each tied parameter once.

    None selects every trainable parameter. Strings match qualified names (``"fc.weight"``) or
    glob patterns (``"layer1.*"``); a module type selects the parameters of modules of that type.
    A selector that matches nothing raises ValueError naming what exists.
    """
    named = list(model.named_parameters())
    if selector is None:
        return [(name, p) for name, p in named if p.requires_grad]
    items = _as_list(selector, "params")
    owners: dict[int, list[nn.Module]] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), []).append(module)
    chosen = []
    for name, param in named:
        for item in items:
            if isinstance(item, str):
                hit = name == item or fnmatch.fnmatchcase(name, item)
            else:
                hit = any(isinstance(owner, item) for owner in owners.get(id(param), []))
            if hit:
                chosen.append((name, param))
                break
    if not chosen:
        examples = ", ".join(name for name, _ in named[:6])
        raise ValueError(f"params={selector!r} matches no parameter of the model; "
                         f"its parameters include: {examples or 'none'}")
    return chosen


def select_modules(model: nn.Module, selector: Selector, default_types: tuple[type, ...]
                   ) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` pairs chosen by names, globs or types; True means ``default_types``."""
    named = [(name, m) for name, m in model.named_modules() if name]
    if selector is True:
        return [(name, m) for name, m in named if isinstance(m, default_types)]
    items = _as_list(selector, "activations")
    chosen = [(name, m) for name, m in named
              if any(name == item or fnmatch.fnmatchcase(name, item) if isinstance(item, str)
                     else isinstance(m, item) for item in items)]
    if not chosen:
        examples = ", ".join(name for name, _ in named[:6])
        raise ValueError(f"activations={selector!r} matches no module; modules include: {examples or 'none'}")
    return chosen
