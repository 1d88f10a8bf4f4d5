"""nbweights where people already train: callbacks for PyTorch Lightning and Hugging Face.

>>> from nbweights.integrations.lightning import WatchCallback       # pip install nbweights[lightning]
>>> from nbweights.integrations.transformers import WatchCallback    # pip install nbweights[transformers]

Each module imports its framework when it is imported itself, never before: ``import nbweights``
needs neither. A missing framework raises ImportError naming the extra that installs it.
"""
