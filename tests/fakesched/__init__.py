"""Stateful fake batch schedulers for the backend tests (see :mod:`fakesched.core`)."""
