"""The step controls: a Play button, the step slider and "follow latest", and their one rule.

While "follow latest" is on, the slider follows each new step. Moving the slider to an older
step switches it off (that step is shown, for replay); switching it on again jumps to the latest.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets


class StepControls:
    """``on_change()`` is called when a person changes the step shown or the follow mode."""

    def __init__(self, latest: int, on_change: Callable[[], None]):
        self.on_change = on_change
        self.slider = widgets.IntSlider(min=0, max=latest, value=latest, description="step",
                                        layout=widgets.Layout(width="420px"))
        # The Play starts at the latest step too: its value is linked to the slider's in the
        # browser, and a Play at 0 pulled a dashboard shown after training back to step 0.
        self.play = widgets.Play(min=0, max=latest, value=latest, interval=150, layout=widgets.Layout(width="90px"))
        # Only the value is linked: the kernel sets both maxima (a linked max came back late and
        # clamped the kernel's slider to an old step, which switched "follow latest" off).
        self.links = [widgets.jslink((self.play, "value"), (self.slider, "value"))]
        self.follow = widgets.ToggleButton(value=True, description="follow latest", icon="forward",
                                           tooltip="show each new step as it is recorded")
        for widget, css in ((self.slider, "nbw-step"), (self.play, "nbw-play"), (self.follow, "nbw-follow")):
            widget.add_class(css)
        self.widget = widgets.HBox([self.play, self.slider, self.follow])
        self.widget.add_class("nbw-controls")
        self._moving = False
        self.latest = latest
        self.slider.observe(self._on_slider, "value")
        self.follow.observe(lambda change: self.on_change(), "value")

    @property
    def widgets(self) -> list[widgets.Widget]:
        """The controls a kernel subshell must hear mid-run."""
        return [self.slider, self.follow]

    @property
    def step(self) -> int | None:
        """The step to show: None while following the latest."""
        return None if self.follow.value else self.slider.value

    def catch_up(self, latest: int) -> None:
        """A new latest step was recorded: widen the slider, and follow it if following."""
        self.latest = latest
        self._moving = True
        try:
            # The max and the value go in separate messages, the max first. In one message the
            # browser's slider applies the max first, and its noUiSlider reports its handle, still
            # at the old step, as a change of value: that old step came back to the kernel, which
            # took it for a person scrubbing and switched "follow latest" off.
            if self.slider.max != latest:
                self.play.max = self.slider.max = latest  # the Play's too: the kernel clamps its value
            if self.follow.value and self.slider.value != latest:
                self.slider.value = latest
        finally:
            self._moving = False

    def _on_slider(self, change: dict) -> None:
        if self._moving:
            return
        if self.follow.value and change["new"] != self.latest:
            self.follow.value = False  # calls on_change through the follow observer
        else:
            self.on_change()

    def close(self) -> None:
        for link in self.links:
            link.close()
