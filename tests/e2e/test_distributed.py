"""Past one machine (docs/performance.md): a site is one pure task, from its RunConfig to its manifest, so a
distributed scheduler runs it as it is. Here Dask's process scheduler runs two sites, each a task in a
spawned worker (Polars' thread pools do not survive a fork), and every output equals that of a run in
this process."""

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import dask

from engine.fleet import run_one
from engine.pipeline import RunConfig
from tests.conftest import SPECS
from tests.rawdata import edge_site, tiny_site, write_raw

SITES = {
    "tacc": (tiny_site, ["nova_host", "blazar_host", "allocation", "reserved_instance", "ondemand_instance"]),
    "edge": (edge_site, ["device", "reservable_device", "device_allocation", "container"]),
}
PER_RUN = {"timings", "generated_at"}  # what differs between two runs of the same site


def _config(tmp_path, key: str, where: str) -> RunConfig:
    tables, entities = SITES[key]
    raw = tmp_path / "raw" / key
    if not raw.exists():
        write_raw(raw, tables())
    out = tmp_path / where / key
    return RunConfig(specs=str(SPECS), data=str(raw), out=str(out), site=key, entities=entities, report=False)


def _same(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in PER_RUN}


def test_sites_run_as_dask_tasks_give_the_outputs_of_a_run_in_this_process(tmp_path):
    tasks = [dask.delayed(run_one)(_config(tmp_path, key, "dask")) for key in SITES]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        outcomes = dask.compute(*tasks, scheduler="processes", pool=pool)
    assert [(o.site, o.error) for o in outcomes] == [("tacc", None), ("edge", None)]
    for key, outcome in zip(SITES, outcomes, strict=True):
        local = run_one(_config(tmp_path, key, "local"))
        assert _same(outcome.manifest) == _same(local.manifest)
        files = sorted(p.relative_to(tmp_path / "dask" / key) for p in (tmp_path / "dask" / key).rglob("*.parquet"))
        assert len(files) > 10
        for rel in files:
            assert (tmp_path / "dask" / key / rel).read_bytes() == (tmp_path / "local" / key / rel).read_bytes(), rel
