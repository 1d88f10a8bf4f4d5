"""What a recording source (a Watcher, a Follower) offers its observers: listeners told each new
step, and a display wired by the package's face, so that neither capture nor history imports a
widget library (a script under torchrun never needs one)."""
from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar

log = logging.getLogger("nbweights")

Listener = Callable[[int], None]


class Listeners:
    """Callbacks told each new step; one that raises is logged once and never reaches the
    caller (training, or the polling thread)."""

    def __init__(self) -> None:
        self._all: list[Listener] = []
        self._failed: set[int] = set()

    def add(self, listener: Listener) -> None:
        self._all.append(listener)

    def remove(self, listener: Listener) -> None:
        if listener in self._all:
            self._all.remove(listener)

    def __contains__(self, listener: object) -> bool:
        return listener in self._all

    def notify(self, step: int) -> None:
        for listener in list(self._all):
            try:
                listener(step)
            except Exception:  # a view must never break training
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    log.exception("nbweights: a listener failed at step %s (logged once)", step)


class Displayed:
    """Listeners and a display built on first use by ``display_factory`` (which
    ``nbweights/__init__.py`` sets to the dashboard's maker; None where only capture or history
    is imported). Subclasses call :meth:`_init_observers` in their constructor."""

    #: Builds the display of an instance; set by the package's face.
    display_factory: ClassVar[Callable[[Any], Any] | None] = None

    def _init_observers(self) -> None:
        self._listeners = Listeners()
        self._dashboard: Any = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(step)`` when a new step is recorded (the dashboard redraws from it)."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    @property
    def dashboard(self) -> Any:
        """The display (the ipywidgets dashboard), built on first use."""
        if self._dashboard is None:
            factory = type(self).display_factory
            if factory is None:
                raise RuntimeError("no display is wired: import nbweights (not only its capture or history)")
            self._dashboard = factory(self)
        return self._dashboard

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.dashboard._repr_mimebundle_(**kwargs)
