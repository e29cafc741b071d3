"""Pausing the cycle collector around bulk work leaves it as it was found."""

from __future__ import annotations

import gc

import pytest

from jobfleet._gc import cycle_collector_paused


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_off_inside_and_as_before_afterwards(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with pytest.raises(RuntimeError), cycle_collector_paused():
            assert not gc.isenabled()
            with cycle_collector_paused():  # nested: the inner one must not switch it on
                pass
            assert not gc.isenabled()
            raise RuntimeError
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
