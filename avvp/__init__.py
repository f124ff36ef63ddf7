"""avvp: a reproducible harness for weakly-supervised audio-visual video parsing on LLP."""

__version__ = "0.1.0"
