"""SOLAMI serving stack: the shared runtime used by every service and the relay."""

__version__ = "0.1.0"
