"""The teaching notebooks run top to bottom, headless, and reach the figures their prose promises.

Each notebook runs in a fresh ``python3`` kernel with ``NBWEIGHTS_QUICK=1`` (fewer epochs, less
data) and ``notebooks/`` as its working directory. A notebook reports its figures on a line
``RESULT {...json...}``; the tests parse it. Fashion-MNIST is used when the Debian package
``dataset-fashion-mnist`` is installed, so the accuracy figure does not depend on the network.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CELL_TIMEOUT_S = 300
MAX_COMMITTED_BYTES = 20_000


def _names() -> list[str]:
    return [path.name for path in NOTEBOOKS]


def test_the_seven_lessons_exist():
    assert [name[:3] for name in _names()] == ["01_", "02_", "03_", "04_", "05_", "06_", "07_"], _names()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_names())
def test_committed_notebook_has_no_outputs_and_is_small(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a lesson without code"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        "outputs not stripped (clear them before committing)"
    assert "widgets" not in notebook.metadata, "saved widget state: clear outputs and widget state"
    assert any(cell.cell_type == "markdown" for cell in notebook.cells), "no prose"
    assert path.stat().st_size < MAX_COMMITTED_BYTES


class Executed:
    """A notebook after a headless run: its cells, all stream text, and the parsed RESULT line."""

    def __init__(self, notebook):
        self.notebook = notebook
        self.stdout = self._streams("stdout")
        self.stderr = self._streams("stderr")
        results = [line for line in self.stdout.splitlines() if line.startswith("RESULT ")]
        assert len(results) == 1, f"expected one RESULT line, got {len(results)}:\n{self.stdout}"
        self.result = json.loads(results[0][len("RESULT "):])

    def _streams(self, name: str) -> str:
        return "".join(output.text for cell in self.notebook.cells if cell.cell_type == "code"
                       for output in cell.outputs
                       if output.output_type == "stream" and output.name == name)


_executed: dict[str, Executed] = {}


def execute(name: str, monkeypatch) -> Executed:
    """Run ``notebooks/<name>`` once per test session (errors in any cell fail the test)."""
    if name not in _executed:
        # The kernel inherits this process's environment.
        monkeypatch.setenv("NBWEIGHTS_QUICK", "1")
        monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # shared CI cores
        if DEBIAN_FASHION_MNIST.is_dir() and "NBWEIGHTS_DATASET" not in os.environ:
            monkeypatch.setenv("NBWEIGHTS_DATASET", "fashion-mnist")
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
        client.execute()
        _executed[name] = Executed(notebook)
    return _executed[name]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_names())
def test_notebook_runs_without_errors(path: Path, monkeypatch):
    run = execute(path.name, monkeypatch)
    # A view that fails is logged with its traceback instead of stopping training: catch it here.
    assert "Traceback" not in run.stderr, run.stderr
    shown = [output for cell in run.notebook.cells if cell.cell_type == "code" for output in cell.outputs
             if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
    assert shown, "no dashboard widget was displayed"


def test_one_neuron_learns_both_weights(monkeypatch):
    result = execute("01_one_neuron.ipynb", monkeypatch).result
    assert result["first_loss"] >= 100 * result["last_loss"], result
    assert all(weight > 0.5 for weight in result["weights"]), result


def test_linear_classifier_accuracy(monkeypatch):
    result = execute("02_linear_classifier.ipynb", monkeypatch).result
    if result["dataset"] == "synthetic bars":
        assert result["accuracy"] >= 0.85, result  # the synthetic bars are easy
    else:
        assert result["accuracy"] >= 0.75, result
    assert len(result["accuracy_per_epoch"]) >= 1
    assert result["seconds_per_epoch_with"] > 0 and result["seconds_per_epoch_without"] > 0


def test_cnn_first_filters_gain_structure(monkeypatch):
    result = execute("03_inside_a_cnn.ipynb", monkeypatch).result
    before, after = result["conv1_neighbour_correlation"]
    assert after > before, result
    assert result["accuracy"] >= 0.6, result


def test_diagnosis_names_layer_and_step(monkeypatch):
    result = execute("04_diagnosing_training.ipynb", monkeypatch).result
    assert result["healthy"]["problem"] is None, result
    diverged = result["diverged"]
    assert diverged["problem"] == "too large" and diverged["step"] <= 2, result
    assert diverged["nonfinite_step"] is not None and diverged["nonfinite_step"] <= 20, result
    deep = result["deep"]
    assert deep["problem"] == "vanishing" and deep["layers"][0] in ("1.weight", "3.weight"), result


def test_any_architecture_never_fails_offline(monkeypatch):
    result = execute("05_any_architecture.ipynb", monkeypatch).result
    assert result["resnet_weights"] in ("ImageNet-trained weights", "random weights"), result
    first, last = result["transformer_loss"]
    assert last < first, result
    assert set(result["qkv_moved"]) == {"Q", "K", "V"}


def test_integrated_gradients_are_complete_and_change_while_learning(monkeypatch):
    result = execute("06_integrated_gradients.ipynb", monkeypatch).result
    assert result["accuracy"] >= 0.3, result  # ten classes: chance is 0.1
    assert result["relative_delta"] < 0.05, result  # attributions sum to F(x) - F(0)
    assert np.mean(result["map_correlation_first_last"]) < 0.9, result  # the maps moved
    assert result["feature_map_shapes"] == {"elu3": [16, 14, 14], "elu6": [16, 7, 7], "conv9": [10, 7, 7]}, result
    assert result["attribution_steps"] >= 3, result


def test_attention_converges_to_the_reversal_pattern(monkeypatch):
    result = execute("07_projections_and_attention.ipynb", monkeypatch).result
    first, last = result["loss"]
    assert last < 0.1 * first, result
    before, after = result["anti_diagonal"]
    assert before < 0.3 and after > 0.6, result  # from spread evenly (1/8) to the anti-diagonal
    assert result["projection_points"] == 10 and result["projection_signs_agree"] == 1.0, result
    assert result["tsne_points"] in (None, 10), result
