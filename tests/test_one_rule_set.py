"""One rule set for "unhealthy" read by every view, and no live markup from names anywhere."""
from __future__ import annotations

import html

import ipywidgets
import torch
from torch import nn

import nbweights as nbw
from nbweights.health import LABELS, by_subject
from nbweights.ui.dashboard import Dashboard

HOSTILE = '<img src=x onerror="alert(1)">'


def train(model, optimizer, steps, inputs):
    for _ in range(steps):
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()


def marked_rows(dashboard) -> dict[str, str]:
    """parameter -> health cell of the layer table's rows that are marked unhealthy."""
    marked = {}
    for row in dashboard.table.table.value.split("<tr")[2:]:
        cells = [c.split(">", 1)[1] for c in row.split("<td")[1:]]
        name, health = html.unescape(cells[0].split("<")[0]), html.unescape(cells[1].split("<")[0])
        if 'class="nbw-unhealthy"' in row.split(">")[0]:
            marked[name] = health
    return marked


def test_the_table_marks_exactly_what_the_health_panel_lists_on_a_zero_initialised_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    with torch.no_grad():
        model[2].weight.zero_()  # its update ratio starts near 1 and falls: not "exploding"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    train(model, optimizer, 5, torch.randn(16, 6))
    dashboard.flush()
    listed = by_subject(dashboard.health.signals)
    assert marked_rows(dashboard) == {name: ", ".join(dict.fromkeys(LABELS[s.kind] for s in signals))
                                      for name, signals in listed.items() if name in watcher.history.names}
    assert "2.weight" not in marked_rows(dashboard)  # the table used to say "update ratio > 0.1" here


def test_the_table_and_panel_agree_on_a_real_fault():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e12)
    watcher = nbw.watch(model, optimizer, every=1)
    dashboard = Dashboard(watcher, max_fps=1e9)
    train(model, optimizer, 6, torch.randn(16, 4) * 100)
    dashboard.flush()
    marked = marked_rows(dashboard)
    assert marked and all("NaN/Inf" in health or "exploding" in health for health in marked.values())
    listed = {name for name in by_subject(dashboard.health.signals) if name in watcher.history.names}
    assert set(marked) == listed


def all_html(widget) -> list[str]:
    """Every HTML widget's value under a widget (rendered with innerHTML; tooltips and options are
    set as text by the front end, so they cannot hold live markup)."""
    found, stack, seen = [], [widget], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ipywidgets.HTML):
            found.append(current.value)
        stack.extend(getattr(current, "children", ()))
    return found


def test_no_html_widget_holds_live_markup_from_a_model_or_a_file(tmp_path):
    model = nn.Sequential()
    model.add_module(HOSTILE, nn.Linear(784, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    watcher = nbw.watch(model, optimizer, every=1, activations=True)
    watcher.probe(torch.randn(1, 784))
    train(model, optimizer, 4, torch.randn(8, 784) * 1e20)  # blows up: NaN signals name it too
    watcher.save(tmp_path / "hostile.nbw")
    for source in (watcher, nbw.load(tmp_path / "hostile.nbw")):
        dashboard = Dashboard(source, max_fps=1e9)
        for entry in dashboard.entries:  # every entry's views, drawn
            dashboard.select(entry)
            dashboard.flush()
            values = all_html(dashboard)
            assert any(html.escape(HOSTILE) in v for v in values)  # the name is shown, as text
            assert not any("<img" in v for v in values), [v for v in values if "<img" in v][:2]
        dashboard.close()
