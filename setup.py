"""nbweights: watch a PyTorch network's weights learn, live, inside a Jupyter notebook cell."""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="nbweights",
    version="0.1.0",
    description="Live views of a PyTorch model's weights, gradients and activations in Jupyter",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    packages=find_packages(include=["nbweights", "nbweights.*"]),
    python_requires=">=3.10",  # type aliases use X | Y at run time (PEP 604)
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy>=1.23",
        "ipywidgets>=8.0",
        "bqplot>=0.12.40",
    ],
    extras_require={
        # Where people already train (nbweights.integrations) and the tools they keep.
        "lightning": ["pytorch-lightning>=2.0"],
        "transformers": ["transformers>=4.36", "accelerate>=0.26"],
        "tensorboard": ["tensorboard>=2.12"],
        "attributions": ["captum>=0.7"],
        "voila": ["voila>=0.5"],
        # Peers that benchmarks/run.py measures side by side (skipped when absent).
        "bench": ["tensorboard", "wandb"],
        "projection": ["scikit-learn"],
        "test": [
            "pytest>=7",
            "jupyterlab>=4",
            "notebook>=7",
            "ipykernel>=6",
            "nbclient>=0.7",
            "nbformat>=5",
            "playwright>=1.40",
            # the integrations' tests run each framework for real
            "pytorch-lightning>=2.0",
            "transformers>=4.36",
            "accelerate>=0.26",
            "tensorboard>=2.12",
            "voila>=0.5",
            "captum>=0.7",
            "scikit-learn",
        ],
    },
    classifiers=[
        "Framework :: Jupyter",
        "Framework :: Jupyter :: JupyterLab :: 4",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
