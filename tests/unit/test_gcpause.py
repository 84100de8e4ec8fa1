"""Pausing the cyclic GC: off inside, back on after the outermost pause, off stays off."""

from __future__ import annotations

import gc

import pytest

from sync.gcpause import cyclic_gc_paused


def test_the_collector_is_off_inside_and_on_after_nested_pauses() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves it to the outer one
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_cycles_made_during_a_pause_are_collected_later() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with cyclic_gc_paused():
        Node()
    assert gc.collect() >= 1
