"""History: the bounded record of a run (store, timelines) and its file format; no hooks, no widgets."""
from .store import DEFAULT_MAX_BYTES, GROUPS, History, Picture
from .timeline import Timeline

__all__ = ["DEFAULT_MAX_BYTES", "GROUPS", "History", "Picture", "Timeline"]
