"""The never-rules of the layout: capture and history need no widget library, and no module
under them imports ui or views; modules stay short."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbweights"
#: Parts that must run in a script under torchrun, with torch and numpy alone.
HEADLESS = ["capture", "history", "summaries.py", "health.py"]
FORBIDDEN = ("ipywidgets", "bqplot", "IPython", "nbweights.ui", "nbweights.views")


def imported_modules(source: str, path: Path) -> set[str]:
    """Absolute names of every module ``source`` imports, relative imports resolved as if it
    were the file at ``path`` inside the package."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = ".".join(p for p in (base, node.module or "") if p)
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_headless_module_imports_the_ui_views_or_a_widget_library():
    files = [f for part in HEADLESS for f in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir()
                                               else [PACKAGE / part])]
    assert len(files) >= 12
    offending = {str(f.relative_to(PACKAGE)): sorted(m for m in imported_modules(f.read_text(), f)
                                                     if m.startswith(FORBIDDEN))
                 for f in files}
    assert {f: m for f, m in offending.items() if m} == {}


def test_the_rule_checker_resolves_relative_imports():
    inside_capture = PACKAGE / "capture" / "watcher.py"
    names = imported_modules("from ..ui.dashboard import Dashboard\nfrom . import groups\nimport bqplot\n",
                             inside_capture)
    assert {"nbweights.ui.dashboard", "nbweights.capture.groups", "bqplot"} <= names


def test_watching_training_and_saving_leave_widget_libraries_unimported(tmp_path):
    script = textwrap.dedent(f"""
        import sys, torch
        from torch import nn
        import nbweights as nbw
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        w = nbw.watch(model, optimizer, every=1, activations=True)
        for _ in range(3):
            optimizer.zero_grad(); model(torch.randn(5, 4)).sum().backward(); optimizer.step()
        w.log(loss=1.0); w.health(); w.save({str(tmp_path / 'run.nbw')!r}); nbw.load({str(tmp_path / 'run.nbw')!r})
        loaded = [m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'bqplot', 'IPython')
                  or m.startswith(('nbweights.ui', 'nbweights.views'))]
        print('LOADED', sorted(loaded))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout


def test_every_module_is_short():
    lengths = {str(f.relative_to(PACKAGE)): len(f.read_text().splitlines()) for f in PACKAGE.rglob("*.py")}
    assert {f: n for f, n in lengths.items() if n > 320} == {}
