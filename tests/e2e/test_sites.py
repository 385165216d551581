"""etc/sites.yaml: choosing sites, their raw data and entities; several sites in one run."""

import json

import polars as pl

from tests.conftest import SPECS, run_cli
from tests.rawdata import edge_site, tiny_site, write_raw

SITES = """
sites:
  tacc:
    name: CHI@TACC (tiny)
    data: raw/tacc
    entities: [nova_host, blazar_host, allocation, reserved_instance, ondemand_instance]
  edge:
    name: CHI@Edge (tiny)
    data: raw/edge
    entities: [device, reservable_device, device_allocation, container]
"""


def setup(tmp_path, text=SITES):
    write_raw(tmp_path / "raw" / "tacc", tiny_site())
    write_raw(tmp_path / "raw" / "edge", edge_site())
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sites.yaml").write_text(text)
    return tmp_path / "etc" / "sites.yaml"


def test_all_sites_run_into_one_directory_each_with_the_site_column(tmp_path):
    sites = setup(tmp_path)
    result = run_cli("run", SPECS, "--sites", sites, "--site", "all", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    manifests = json.loads(result.stdout)
    assert [m["site"] for m in manifests] == ["tacc", "edge"]
    assert set(manifests[1]["entities"]) == {"device", "reservable_device", "device_allocation", "container"}
    assert manifests[0]["warnings"] == []  # only the listed entities run: no missing-table noise
    daily = pl.read_parquet(tmp_path / "out" / "edge" / "daily.parquet")
    assert daily["site"].unique().to_list() == ["edge"]


def test_a_site_named_twice_runs_once(tmp_path):
    sites = setup(tmp_path)
    result = run_cli(
        "run", SPECS, "--sites", sites, "--site", "edge", "--site", "edge", "--out", tmp_path / "o", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["site"] == "edge"  # one site: one manifest, straight into --out
    assert (tmp_path / "o" / "manifest.json").is_file()


def test_unknown_site_suggests_a_known_one(tmp_path):
    result = run_cli("run", SPECS, "--sites", setup(tmp_path), "--site", "tac")
    assert result.exit_code == 1
    assert "--site: unknown site 'tac' (did you mean 'tacc'?); known: tacc, edge" in result.stderr


def test_a_site_listing_a_child_without_its_parent_is_refused(tmp_path):
    sites = setup(tmp_path, SITES.replace("entities: [device, reservable_device,", "entities: ["))
    result = run_cli("run", SPECS, "--sites", sites, "--site", "edge", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert (
        f"{sites}: sites.edge.entities: 'device_allocation' needs its parent 'reservable_device', which the site "
        "does not list" in result.stderr
    )


def test_a_bad_sites_file_names_file_line_and_field(tmp_path):
    sites = setup(tmp_path, SITES.replace("    data: raw/edge\n", "    dta: raw/edge\n"))
    result = run_cli("run", SPECS, "--sites", sites, "--site", "edge")
    assert result.exit_code == 1
    assert "sites.yaml:8: sites: sites.edge: unknown field 'dta' (did you mean 'data'?)" in result.stderr


def test_sites_in_parallel_workers_give_the_same_outputs_as_one_after_the_other(tmp_path):
    sites = setup(tmp_path)
    for jobs in ("1", "2"):
        result = run_cli(
            "run",
            SPECS,
            "--sites",
            sites,
            "--site",
            "all",
            "--out",
            tmp_path / f"out{jobs}",
            "--jobs",
            jobs,
            "--no-report",
        )
        assert result.exit_code == 0, result.stderr
        assert "2 of 2 sites done" in result.stdout
    for key in ("tacc", "edge"):
        for name in ("daily.parquet", "usage.parquet", "validated/reserved_instance.parquet"):
            one, two = tmp_path / "out1" / key / name, tmp_path / "out2" / key / name
            if one.exists() or two.exists():
                assert one.read_bytes() == two.read_bytes(), f"{key}/{name}"


def test_a_failing_site_is_reported_and_the_others_still_run(tmp_path):
    sites = setup(tmp_path, SITES + "  gone:\n    name: no data\n    data: raw/gone\n")
    result = run_cli(
        "run",
        SPECS,
        "--sites",
        sites,
        "--site",
        "tacc",
        "--site",
        "gone",
        "--out",
        tmp_path / "out",
        "--jobs",
        "2",
        "--no-report",
    )
    assert result.exit_code == 1
    assert "1 of 2 sites done" in result.stdout
    assert f"✗ gone: {tmp_path / 'raw' / 'gone'}: raw data directory does not exist" in result.stdout
    assert (tmp_path / "out" / "tacc" / "daily.parquet").is_file()
    assert not (tmp_path / "out" / "gone").exists()
    assert "Traceback" not in result.stdout + result.stderr


def test_a_simulated_sites_parameters_never_become_a_path(tmp_path, monkeypatch):
    """The cache directory was named from the parameters' text: `timezone: America/Chicago` made a
    subdirectory (the run failed and left a partial copy) and `../` steered it out of the cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = "sites:\n"
    for key, zone in (("chicago", "America/Chicago"), ("climb", "../../../escaped")):
        text += f"  {key}:\n    name: {key}\n    simulate: {{generator: chameleon, hosts: 2, days: 2, timezone: '{zone}'}}\n"
    sites = setup(tmp_path, text)
    result = run_cli("run", SPECS, "--sites", sites, "--site", "chicago", "--out", tmp_path / "o", "--no-report")
    assert result.exit_code == 0, result.stderr
    climb = run_cli("run", SPECS, "--sites", sites, "--site", "climb", "--out", tmp_path / "o2", "--no-report")
    assert climb.exit_code == 1
    assert climb.stderr.strip().splitlines()[-1] == (
        "✗ generator chameleon: timezone: expected an IANA time zone name (e.g. America/Chicago), got '../../../escaped'"
    )
    (generated,) = (tmp_path / "cache" / "testbed-usage-engine").iterdir()  # nothing left of the refused one
    assert generated.name.startswith("chicago-") and (generated / "nova.compute_nodes.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "etc", "o", "raw"]
