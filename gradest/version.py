"""gradest's version: what `gradest.__version__` shows, and what stands for gradest's own code
in a result's code fingerprint (`gradest.provenance`). Here, not in the package facade, so that
modules inside the package read it without importing the facade."""

__version__ = "0.1.0"
