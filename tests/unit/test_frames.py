"""Rows shared by lookups (plan/frames.py): grouped lookups over the same source and first join read one
collected frame; they give the rows they give alone, and the frame is released after its last reader."""

import polars as pl

from engine.io.raw import RawDir
from engine.pipeline import Catalog
from engine.plan.frames import Frames, _sharers
from engine.spec.load import load_specs
from tests.conftest import SPECS
from tests.rawdata import tiny_site, write_raw

SPECS_LOADED = load_specs(SPECS)
SHARING = {"instance_events", "instance_end_event"}  # the bundled lookups over the events joined to the actions


def test_only_lookups_the_run_builds_share_rows():
    assert set(_sharers(SPECS_LOADED, None)) == SHARING
    assert _sharers(SPECS_LOADED, {"instance_events", "host_node_type"}) == {}  # one alone shares with no one


def test_shared_rows_give_the_lookups_built_alone_and_are_released_after_the_last(tmp_path):
    raw = RawDir(write_raw(tmp_path / "raw", tiny_site()))
    built = {}
    for label, lookups in (("shared", None), ("alone", set())):
        catalog = Catalog(raw, "tiny")
        frames = Frames(SPECS_LOADED, catalog, lookups=lookups)
        for name in ("instance_events", "instance_end_event"):  # the second joins the first, as a graph run does
            catalog.built[name] = frames.collect(frames.lookup(SPECS_LOADED.lookups[name]), name)
            if name == "instance_events":  # shared: held for the other reader; alone: nothing is held
                assert len(frames._shared) == (lookups is None)
        built[label] = dict(catalog.built)
        assert frames._shared == {} and all(not unread for unread in frames._unread.values())
    for name in SHARING:
        shared, alone = (built[label][name].sort(pl.all()) for label in ("shared", "alone"))
        assert shared.height > 0 and shared.equals(alone), name
