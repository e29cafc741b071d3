"""Tests of jobfleet.store, one module per part of it."""
