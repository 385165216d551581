"""Archived rows (`nova-manage db archive_deleted_rows`): a raw table is read as one table with its archive.

The tiny site is tests/rawdata.py:lifecycle_site, whose spans are worked out by hand in
tests/e2e/test_domain_rules.py; here part of it is moved into the shadow tables, and the run must give the same
spans, with a key in both tables counted once (the live row) and a warning when its two rows differ.
"""

import json

import polars as pl

from tests.conftest import SPECS, run_cli
from tests.hardening.support import one_error, spec_problems
from tests.rawdata import day, lifecycle_site, write_raw

WINDOW = ["--start", "2024-01-01", "--end", "2024-01-21"]


def run_site(base, tables):
    raw = write_raw(base / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", base / "out", "--no-report", *WINDOW)
    assert result.exit_code == 0, result.stderr
    return base / "out", json.loads((base / "out" / "manifest.json").read_text())


def spans(out, entity="ondemand_instance"):
    return pl.read_parquet(out / "validated" / f"{entity}.parquet").sort("entity_id")


def archived(tables: dict, uuids: set[str]) -> dict:
    """The site after archiving these instances: their rows, actions and events moved to the shadow tables."""
    moved = dict(tables)
    actions = {a["id"] for a in tables["nova.instance_actions"] if a["instance_uuid"] in uuids}
    for live, keep in (
        ("nova.instances", lambda r: r["uuid"] not in uuids),
        ("nova.instance_actions", lambda r: r["id"] not in actions),
        ("nova.instance_actions_events", lambda r: r["action_id"] not in actions),
    ):
        schema, table = live.split(".")
        moved[live] = [r for r in tables[live] if keep(r)]
        moved[f"{schema}.shadow_{table}"] = [r for r in tables[live] if not keep(r)]
    return moved


def test_archived_rows_are_read_as_if_never_moved(tmp_path):
    site = lifecycle_site()
    out, m = run_site(tmp_path / "live", site)
    tables = archived(site, {"E1", "E2"})  # E1 and E2 end only through their events, now all archived
    assert len(tables["nova.shadow_instance_actions_events"]) == 7
    out_arch, m_arch = run_site(tmp_path / "archived", tables)
    assert spans(out_arch).equals(spans(out))
    got = {r["entity_id"]: (r["valid_start"], r["valid_end"]) for r in spans(out_arch).iter_rows(named=True)}
    assert got["E1"] == (day(1), day(5)) and got["E2"] == (day(1), day(4))  # test_domain_rules' answers
    assert m_arch["entities"]["ondemand_instance"] == m["entities"]["ondemand_instance"]
    assert m_arch["tables"]["nova.instances"] == 3 and m_arch["tables"]["nova.shadow_instances"] == 2
    assert m_arch["tables"]["nova.shadow_instance_actions"] == 7 and m_arch["tables"]["nova.instance_actions"] == 4
    assert "nova.shadow_instances" not in m["tables"]
    assert not [w for w in m_arch["warnings"] if "shadow" in w]
    assert [i for i in m_arch["invariants"] if i["status"] != "pass"] == []


def test_an_archive_with_its_times_as_text_is_read_as_the_typed_one(tmp_path):
    """Shadow tables dumped through CSV: "cannot compare the rows of a key in both (casting from string to
    datetime is not supported)", though no key was in both."""
    site = lifecycle_site()
    out, m = run_site(tmp_path / "typed", archived(site, {"E1", "E2"}))
    tables = archived(site, {"E1", "E2"})
    for name in [t for t in tables if ".shadow_" in t]:
        tables[name] = [
            {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()} for r in tables[name]
        ]
    out_text, m_text = run_site(tmp_path / "text", tables)
    assert spans(out_text).equals(spans(out)) and m_text["entities"] == m["entities"]


def test_a_key_in_both_is_counted_once_and_differing_rows_are_a_warning(tmp_path):
    site = lifecycle_site()
    live = {r["uuid"]: r for r in site["nova.instances"]}
    tables = archived(site, {"E1"})
    tables["nova.shadow_instances"] += [
        live["E4"],  # the same row in both: read once, no warning
        live["E5"] | {"vcpus": 96, "deleted_at": day(9)},  # another version: the live row is read, a warning
        live["E3"] | {"uuid": "E6", "node": "h3", "created_at": day(12), "launched_at": day(12)},  # archive only
    ]
    out, m = run_site(tmp_path, tables)
    rows = {r["entity_id"]: r for r in spans(out).iter_rows(named=True)}
    assert sorted(rows) == ["E1", "E2", "E3", "E4", "E5", "E6"]  # six uuids, each once
    e = m["entities"]["ondemand_instance"]
    assert e["input_rows"] == 6  # 4 live + 4 archived - 2 in both
    assert e["input_rows"] == e["accepted"] + e["rejected"] + e["inactive"] + e["out_of_scope"] + e["not_recorded"]
    assert rows["E5"]["vcpus"] == 48 and rows["E5"]["valid_end"] == day(6)  # the live row
    assert rows["E1"]["valid_end"] == day(5) and rows["E6"]["valid_start"] == day(12)
    assert m["tables"]["nova.instances"] == 4 and m["tables"]["nova.shadow_instances"] == 4
    warned = [w for w in m["warnings"] if "nova.shadow_instances" in w]
    assert len(warned) == 1
    assert (
        "1 key(s) of (uuid) also in nova.instances with other values; the rows of nova.instances are read" in warned[0]
    )


def test_an_archive_without_the_key_column_is_one_line(tmp_path):
    tables = archived(lifecycle_site(), {"E1"})
    for row in tables["nova.shadow_instances"]:
        row["id_of_instance"] = row.pop("uuid")
    raw = write_raw(tmp_path / "raw", tables)
    message = one_error(run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW))
    assert message.startswith(f"{raw}/nova.shadow_instances.parquet: no column 'uuid', the key of the archive")
    assert "nova.shadow_instances of nova.instances (specs/entities/" in message


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_two_archives_of_one_table_name_both_files(specs_copy):
    edit(
        specs_copy / "entities" / "ondemand_instance.yaml",
        "archive: {table: nova.shadow_instances, key: [uuid]}",
        "archive: {table: nova.shadow_instances, key: [id]}",
    )
    problems = spec_problems(run_cli("validate", specs_copy))
    assert len(problems) == 1
    assert problems[0].startswith("specs/entities/ondemand_instance.yaml: entity 'ondemand_instance': ")
    assert "source.archive: nova.instances is archived in nova.shadow_instances on (id), but" in problems[0]
    assert "specs/entities/kvm_ondemand_instance.yaml declares nova.shadow_instances on (uuid)" in problems[0]


def test_an_archive_of_a_lookup_or_of_itself_is_refused(specs_copy):
    edit(
        specs_copy / "entities" / "nova_host.yaml",
        "  - table: hostname_node_type",
        "  - table: hostname_node_type\n    archive: {table: x.y, key: [id]}",
    )
    edit(
        specs_copy / "entities" / "allocation.yaml",
        "  table: blazar.computehost_allocations\n",
        "  table: blazar.computehost_allocations\n  archive: {table: blazar.computehost_allocations, key: [id]}\n",
    )
    problems = spec_problems(run_cli("validate", specs_copy))
    assert any("joins[0].archive: hostname_node_type is a lookup: only a raw table" in p for p in problems)
    assert any("source.archive: blazar.computehost_allocations cannot be its own archive" in p for p in problems)


def test_the_bundled_specs_declare_one_archive_per_nova_table():
    from engine.spec.load import load_specs

    archives = {t: (a.table, a.key) for t, a in load_specs(SPECS).archives.items()}
    assert archives == {
        "nova.instances": ("nova.shadow_instances", ("uuid",)),
        "nova.instance_actions": ("nova.shadow_instance_actions", ("id",)),
        "nova.instance_actions_events": ("nova.shadow_instance_actions_events", ("id",)),
    }


def rounded(entities: dict) -> dict:
    """The entity accounts with hours to 1e-6 (their sums follow the row order, which archiving changes)."""

    def fix(value):
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return round(value, 6) if isinstance(value, float) else value

    return fix(entities)


def test_a_simulated_site_archived_gives_the_same_run(tmp_path):
    from simulator.chameleon import simulate

    runs = {}
    for name, archive in (("live", None), ("archived", 10)):
        raw = tmp_path / name / "raw"  # one directory name: the site column is the same
        summary = simulate(raw, seed=3, hosts=8, days=60, archive_days=archive)
        result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / name / "out", "--no-report")
        assert result.exit_code == 0, result.stderr
        runs[name] = tmp_path / name / "out", summary["tables"]
    (live, tables), (archived, moved) = runs["live"], runs["archived"]
    for table in ("instances", "instance_actions", "instance_actions_events"):
        assert moved[f"nova.shadow_{table}"] > 0 and moved[f"nova.{table}"] > 0
        assert moved[f"nova.shadow_{table}"] + moved[f"nova.{table}"] == tables[f"nova.{table}"]
    assert pl.read_parquet(archived / "daily.parquet").equals(pl.read_parquet(live / "daily.parquet"))
    for entity in ("reserved_instance", "ondemand_instance"):
        assert spans(archived, entity).equals(spans(live, entity))
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (live, archived)]
    assert rounded(manifests[1]["entities"]) == rounded(manifests[0]["entities"])
    assert manifests[1]["entities"]["reserved_instance"]["input_rows"] == tables["nova.instances"]
    assert manifests[1]["tables"]["nova.shadow_instances"] == moved["nova.shadow_instances"]
    assert [i for i in manifests[1]["invariants"] if i["status"] != "pass"] == []
