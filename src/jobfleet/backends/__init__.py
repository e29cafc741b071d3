"""Backends: where jobs run."""

from jobfleet.backends.base import Backend
from jobfleet.backends.local import Local

__all__ = ["Backend", "Local"]
