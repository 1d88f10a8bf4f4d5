"""nbweights: watch a PyTorch model's weights learn, live, in a Jupyter notebook.

>>> import nbweights as nbw
>>> w = nbw.watch(model, optimizer)   # then `w` as a cell's last line shows the dashboard
"""
from .capture import NonFiniteError, Watcher, watch
from .health import Signal, Thresholds
from .fileformat import load_history as load
from .history import History

__all__ = ["watch", "show", "load", "Watcher", "History", "NonFiniteError", "Signal", "Thresholds"]
__version__ = "0.1.0"


def show(model, **options):
    """The dashboard of a model's current weights, with no training: ``nbw.show(model)``."""
    from .capture import _check_model
    watcher = Watcher(_check_model(model, "show"), **options)
    watcher.close()
    return watcher.dashboard
