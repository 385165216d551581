"""`engine explain`: the hierarchy as a tree, Mermaid, DOT and Markdown, from the specs alone."""

import re

from engine.graph import build_graph, entity_order, tables_for
from engine.spec.load import load_specs
from tests.conftest import SPECS, run_cli

DEVICE_HOST = """
entity: device_host
description: An edge device enrolled in Blazar.
metric: reservable
source: {table: blazar.devices, key: id}
valid: {start: created_at, end: deleted_at}
tx: {start: created_at, end: deleted_at}
attributes: {id: id, node_type: device_type}
resources: {nodes: 1}
"""
DEVICE_RESERVATION = """
entity: device_reservation
description: An edge device committed to a lease.
metric: committed
source: {table: blazar.device_allocations, key: id}
joins:
  - {table: blazar.reservations, as: r, on: {reservation_id: id}, required: true}
  - {table: blazar.leases, as: l, on: {r.lease_id: id}, required: true}
valid:
  start: l.start_date
  end: least(l.end_date, l.deleted_at)
tx: {start: created_at, end: deleted_at}
parent: {entity: device_host, on: {device_id: id}}
attributes: {device_id: device_id}
inherit: [node_type]
resources: {nodes: 1}
"""


def mermaid_edges(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s+(\w+) -->\|.*\| (\w+)$", text, re.M))


def test_mermaid_renders_the_four_level_hierarchy():
    result = run_cli("explain", SPECS, "--format", "mermaid")
    assert result.exit_code == 0
    assert result.stdout.startswith("graph TD\n")
    assert mermaid_edges(result.stdout) == {
        ("nova_host", "blazar_host"),
        ("blazar_host", "allocation"),
        ("allocation", "reserved_instance"),
        ("nova_host", "ondemand_instance"),
        ("blazar_host", "slice_allocation"),
        ("slice_allocation", "kvm_reserved_instance"),
        ("nova_host", "kvm_ondemand_instance"),
        ("device", "reservable_device"),
        ("reservable_device", "device_allocation"),
        ("device_allocation", "container"),
    }
    assert 'allocation["allocation<br/>committed<br/>blazar.computehost_allocations"]' in result.stdout


def test_tree_nests_children_under_parents_with_their_facts():
    out = run_cli("explain", SPECS).stdout
    lines = out.splitlines()
    depth = {
        name: next(ln.index(name) for ln in lines if re.search(rf"\b{name} →", ln))
        for name in entity_order(build_graph(load_specs(SPECS)))
    }
    assert depth["nova_host"] < depth["blazar_host"] < depth["allocation"] < depth["reserved_instance"]
    assert depth["ondemand_instance"] == depth["blazar_host"]  # on-demand hangs under the nova host
    assert "join: r = blazar.reservations on reservation_id = r.id (required)" in out
    assert "valid: [greatest(l.start_date, l.created_at), least(l.end_date, l.deleted_at))" in " ".join(out.split())


def test_entity_focus_shows_ancestors_and_descendants_only():
    out = run_cli("explain", SPECS, "--entity", "allocation", "--format", "mermaid").stdout
    assert mermaid_edges(out) == {
        ("nova_host", "blazar_host"),
        ("blazar_host", "allocation"),
        ("allocation", "reserved_instance"),
    }


def test_unknown_entity_focus_is_a_clear_error():
    result = run_cli("explain", SPECS, "--entity", "alocation")
    assert result.exit_code == 1
    assert "--entity: unknown entity 'alocation' (did you mean 'allocation'?)" in result.stderr


def test_dot_and_markdown():
    dot = run_cli("explain", SPECS, "--format", "dot").stdout
    assert '"blazar_host" -> "allocation" [label="hypervisor_hostname = hypervisor_hostname"];' in dot
    md = run_cli("explain", SPECS, "--format", "markdown").stdout
    assert (
        md.startswith("# Entities")
        and "## reserved_instance" in md
        and "| rule | `never_launched: launched_at IS NULL` |" in md
    )


def test_adding_an_entity_is_adding_yaml(specs_copy):
    (specs_copy / "entities" / "device_host.yaml").write_text(DEVICE_HOST)
    (specs_copy / "entities" / "device_reservation.yaml").write_text(DEVICE_RESERVATION)
    assert run_cli("validate", specs_copy).exit_code == 0
    out = run_cli("explain", specs_copy, "--format", "mermaid").stdout
    assert ("device_host", "device_reservation") in mermaid_edges(out)
    tree = run_cli("explain", specs_copy, "--entity", "device_reservation").stdout
    assert tree.index("device_host →") < tree.index("device_reservation →")
    assert "nova_host" not in tree


def test_execution_order_puts_parents_first_and_lists_raw_tables():
    graph = build_graph(load_specs(SPECS))
    order = entity_order(graph)
    assert (
        order.index("nova_host")
        < order.index("blazar_host")
        < order.index("allocation")
        < order.index("reserved_instance")
    )
    assert tables_for(graph)[0] == [
        "blazar.computehost_allocations",
        "blazar.computehost_extra_capabilities",
        "blazar.computehosts",
        "blazar.device_allocations",
        "blazar.device_extra_capabilities",
        "blazar.devices",
        "blazar.instance_reservations",
        "blazar.leases",
        "blazar.reservations",
        "blazar.resource_properties",
        "chameleon_usage.node_usage_report_cache",
        "nova.compute_nodes",
        "nova.instance_actions",
        "nova.instance_actions_events",
        "nova.instances",
        "nova_api.request_specs",
        "zun.container",
    ]


def test_docs_entities_md_is_generated_from_the_specs():
    doc = (SPECS.parent / "docs" / "entities.md").read_text()
    assert doc == run_cli("explain", SPECS, "--format", "markdown").stdout, (
        "docs/entities.md is stale: run `engine explain specs/ --format markdown > docs/entities.md`"
    )


def test_a_pipe_in_an_expression_or_a_description_stays_in_its_markdown_cell(specs_copy):
    """GFM splits table cells on `|` even inside a code span: `x || 'nic'` made a row of four cells."""
    allocation = specs_copy / "entities" / "allocation.yaml"
    text = allocation.read_text()
    allocation.write_text(
        text.replace("  - r.resource_type = 'physical:host'", "  - r.resource_type || '' = 'physical:host'")
    )
    lookup = specs_copy / "lookups" / "host_su_factor.yaml"
    lookup.write_text(lookup.read_text().replace("description: >\n", "description: >\n  In | out.\n", 1))
    result = run_cli("explain", specs_copy, "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert "| scope | `r.resource_type \\|\\| '' = 'physical:host'` |" in rows
    assert all(len(re.findall(r"(?<!\\)\|", row)) in (3, 4) for row in rows)  # two or three cells
    assert any(row.startswith("| host_su_factor |") and "In \\| out." in row for row in rows)
