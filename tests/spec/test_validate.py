"""`engine validate`: the bundled specs pass; every kind of bad spec gives exit 1 and a clear line."""

import json

import pytest

from tests.conftest import SPECS, run_cli


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def problems_of(specs_dir) -> str:
    result = run_cli("validate", specs_dir)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output + result.stderr
    return result.stderr


def test_bundled_specs_are_valid():
    result = run_cli("validate", SPECS)
    assert result.exit_code == 0, result.stderr
    assert "12 entities, 7 lookups, 9 metrics — valid" in result.stdout


def test_json_summary_carries_counts_and_digest():
    result = run_cli("validate", SPECS, "--json")
    data = json.loads(result.stdout)
    assert data["valid"] and data["entities"] == 12 and len(data["sha256"]) == 64


def test_malformed_yaml_names_file_and_line(specs_copy):
    (specs_copy / "entities" / "broken.yaml").write_text("entity: broken\nmetric: [total\ndescription: x\n")
    out = problems_of(specs_copy)
    assert "entities/broken.yaml:3: YAML syntax error near line 3" in out


def test_wrong_type_is_one_sentence_with_path_and_line(specs_copy):
    edit(specs_copy / "entities" / "allocation.yaml", "on: {hypervisor_hostname: hypervisor_hostname}", "on: [a, b]")
    out = problems_of(specs_copy)
    assert "entities/allocation.yaml:43: entity 'allocation': parent.on: expected a mapping, got a list" in out


def test_unknown_field_suggests_the_right_one(specs_copy):
    edit(specs_copy / "entities" / "nova_host.yaml", "resources:", "resoruces:")
    out = problems_of(specs_copy)
    assert "entity 'nova_host': unknown field 'resoruces' (did you mean 'resources'?)" in out
    assert "entity 'nova_host': missing required field 'resources'" in out


def test_missing_required_field(specs_copy):
    edit(specs_copy / "entities" / "blazar_host.yaml", "metric: reservable\n", "")
    assert "entity 'blazar_host': missing required field 'metric'" in problems_of(specs_copy)


def test_unknown_parent_suggests_close_name(specs_copy):
    edit(specs_copy / "entities" / "allocation.yaml", "entity: blazar_host", "entity: blazar_hots")
    out = problems_of(specs_copy)
    assert "entity 'allocation': parent.entity: unknown entity 'blazar_hots' (did you mean 'blazar_host'?)" in out


def test_a_name_longer_than_a_file_name_can_be_is_refused(specs_copy):
    # an entity's name becomes its checkpoint files' names (spans/NAME.parquet): 64 characters at most
    long = "x" * 65
    edit(specs_copy / "entities" / "container.yaml", "entity: container", f"entity: {long}")
    assert f"entity: '{long}' is too long" in problems_of(specs_copy)
    edit(specs_copy / "entities" / "container.yaml", f"entity: {long}", f"entity: {long[:64]}")
    assert run_cli("validate", specs_copy).exit_code == 0


def test_parent_cycle_is_shown_as_a_path(specs_copy):
    nova = specs_copy / "entities" / "nova_host.yaml"
    edit(
        nova, "identity:", "parent:\n  entity: allocation\n  on: {hypervisor_hostname: hypervisor_hostname}\nidentity:"
    )
    edit(nova, "attributes:", "inherit: [lease_id]\nattributes:")
    out = problems_of(specs_copy)
    assert "parent links form a cycle: allocation --> nova_host --> blazar_host --> allocation" in out


def test_duplicate_entity_names_both_files(specs_copy):
    text = (specs_copy / "entities" / "allocation.yaml").read_text()
    (specs_copy / "entities" / "allocation_copy.yaml").write_text(text)
    out = problems_of(specs_copy)
    assert (
        "entities/allocation_copy.yaml: entity 'allocation' is already defined in specs/entities/allocation.yaml" in out
    )


def test_non_yaml_file_is_ignored_with_a_note(specs_copy):
    (specs_copy / "entities" / "NOTES.txt").write_text("not a spec")
    result = run_cli("validate", specs_copy)
    assert result.exit_code == 0
    assert "note: specs/entities/NOTES.txt: not a .yaml file, ignored" in result.stderr


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no spec files found" in problems_of(tmp_path / "empty")


def test_missing_path(tmp_path):
    assert f"{tmp_path / 'nope'}: spec path does not exist" in problems_of(tmp_path / "nope")


def test_every_problem_is_reported_not_just_the_first(specs_copy):
    edit(specs_copy / "entities" / "nova_host.yaml", "metric: total", "metric: totl")
    edit(specs_copy / "metrics.yaml", "formula: reservable - committed", "formula: reservabel - committed")
    edit(specs_copy / "entities" / "allocation.yaml", "least(l.end_date, l.deleted_at)", "least(l.end_date, ")
    out = problems_of(specs_copy)
    assert "3 problems" in out
    assert "metric: 'totl' is not a base metric of specs/metrics.yaml (did you mean 'total'?)" in out
    assert "metrics.available_reservable.formula: unknown metric 'reservabel' (did you mean 'reservable'?)" in out
    assert "entity 'allocation': valid.end: cannot parse 'least(l.end_date,': not a valid SQL expression" in out


def test_formula_counting_a_base_metric_twice_or_cancelling_out_is_refused(specs_copy):
    derived = "    formula: ondemand_capacity - occupied_ondemand\n"
    extra = "  twice:\n    description: x\n    formula: total + ondemand_capacity + reservable\n"
    extra += "  nothing:\n    description: x\n    formula: idle - committed + occupied_reservation\n"
    edit(specs_copy / "metrics.yaml", derived, derived + extra)
    out = problems_of(specs_copy)
    assert "2 problems" in out
    assert "metrics.twice.formula: counts base metric 'total' with weight +2;" in out
    assert "metrics.nothing.formula: its terms cancel out: it is zero whatever the data" in out


def test_formulas_that_double_at_every_level_are_refused_at_once(specs_copy):
    """x40 = 2^40 × total: expanding it term by term would take 2^40 steps; each metric is expanded once."""
    derived = "    formula: ondemand_capacity - occupied_ondemand\n"
    chain = "".join(f"  x{i}:\n    description: x\n    formula: x{i - 1} + x{i - 1}\n" for i in range(1, 41))
    edit(specs_copy / "metrics.yaml", derived, derived + "  x0:\n    description: x\n    formula: total\n" + chain)
    out = problems_of(specs_copy)
    assert "40 problems" in out
    assert f"metrics.x40.formula: counts base metric 'total' with weight +{2**40};" in out


def test_a_chain_of_thousands_of_formulas_is_expanded_without_recursion(specs_copy):
    derived = "    formula: ondemand_capacity - occupied_ondemand\n"
    chain = "".join(f"  c{i}:\n    description: x\n    formula: c{i - 1} - total + total\n" for i in range(1, 3001))
    edit(specs_copy / "metrics.yaml", derived, derived + "  c0:\n    description: x\n    formula: idle\n" + chain)
    result = run_cli("validate", specs_copy)
    assert result.exit_code == 0, result.stderr
    assert "3010 metrics — valid" in result.stdout


@pytest.mark.parametrize(
    "path",
    ["$" + "[0]" * 5000, "$..name", "flavor.name", "$[0]x"],
    ids=["5000 steps: a segfault in the JSON reader before", "recursive descent", "no $", "trailing text"],
)
def test_jsonpath_outside_the_supported_steps_is_refused(specs_copy, path):
    lookup = specs_copy / "lookups" / "instance_reservation.yaml"
    edit(lookup, "path: \"$['nova_object.data'].flavor['nova_object.data'].name\"", f"path: '{path}'")
    out = problems_of(specs_copy)
    assert "lookup 'instance_reservation': columns.flavor_name.path: " in out
    assert "is not valid: a JSONPath of at most 64 steps, each .name, .*, [N], [*] or ['name']" in out


ROW_BY_ROW = "and this field is computed row by row; aggregates belong in a lookup's or report's `aggregate`"


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "entities/nova_host.yaml",
            "  nodes: 1",
            "  nodes: count(*)",
            f"resources.nodes: count() is an aggregate, {ROW_BY_ROW}",
        ),
        (
            "entities/nova_host.yaml",
            "  vcpus: vcpus ",
            "  vcpus: sum(vcpus) ",
            f"resources.vcpus: sum() is an aggregate, {ROW_BY_ROW}",
        ),
        (
            "entities/allocation.yaml",
            "  - r.resource_type = 'physical:host'",
            "  - count(*) FILTER (WHERE r.resource_type = 'physical:host') > 0",
            f"scope[0]: count() is an aggregate, {ROW_BY_ROW}",
        ),
        (
            "metrics.yaml",
            "    committed: reserved_hours + used_hours",
            "    committed: sum(reserved_hours)",
            f"metrics.yaml: legacy.metrics.committed: sum() is an aggregate, {ROW_BY_ROW}",
        ),
        (
            "lookups/instance_end_event.yaml",
            "  end_time: min(start_time)",
            "  end_time: start_time",
            "aggregate.end_time: 'start_time' is read outside an aggregate, and a group has many rows: take one value",
        ),
        (
            "lookups/instance_end_event.yaml",
            "  end_time: min(start_time)",
            "  end_time: max(min(start_time))",
            "aggregate.end_time: min() is inside another aggregate; aggregates do not nest",
        ),
    ],
    ids=["count(*) as a resource", "sum as a resource", "FILTER in a scope", "legacy", "bare column", "nested"],
)
def test_aggregates_only_in_a_groups_aggregate_and_every_column_there_inside_one(specs_copy, file, old, new, expected):
    """Before, the first four ran and passed every invariant with one table-wide value broadcast to each row."""
    edit(specs_copy / file, old, new)
    out = problems_of(specs_copy)
    assert "1 problem:" in out and expected in out


def test_a_filter_reads_the_groups_rows_and_a_constant_needs_no_aggregate(specs_copy):
    events = specs_copy / "lookups" / "instance_end_event.yaml"
    edit(events, "  end_time: min(start_time)", "  end_time: min(start_time) FILTER (WHERE event <> 'x')\n  one: 1")
    assert run_cli("validate", specs_copy).exit_code == 0


@pytest.mark.parametrize("name", ["resource", "node_type"])
def test_a_metric_named_like_a_column_of_the_daily_outputs_is_refused(specs_copy, name):
    """It ran, and every export of the run then failed: 'column with name resource has more than one occurrence'."""
    derived = "    formula: ondemand_capacity - occupied_ondemand\n"
    edit(specs_copy / "metrics.yaml", derived, derived + f"  {name}:\n    description: x\n    formula: total\n")
    out = problems_of(specs_copy)
    assert f"metrics.yaml: metrics.{name}: a metric may not be named like a column of the daily outputs (date, " in out


def test_a_name_or_table_ending_in_a_newline_is_refused(specs_copy):
    """Python's re.search lets a pattern's $ match before a final newline: entity 'evil\\n' was valid, broke
    explain's mermaid and dot output and wrote files named 'evil\\n.parquet'."""
    edit(specs_copy / "entities" / "nova_host.yaml", "entity: nova_host", 'entity: "nova_host\\n"')
    edit(
        specs_copy / "entities" / "allocation.yaml",
        "table: blazar.computehost_allocations",
        'table: "blazar.computehost_allocations\\n"',
    )
    out = problems_of(specs_copy)
    assert "entity: 'nova_host\\n' is not valid: a lower-case identifier" in out
    assert "source.table: 'blazar.computehost_allocations\\n' is not valid" in out


def test_parent_must_provide_join_keys_and_inherited_attributes(specs_copy):
    alloc = specs_copy / "entities" / "allocation.yaml"
    edit(alloc, "on: {hypervisor_hostname: hypervisor_hostname}", "on: {hypervisor_hostname: host_name}")
    edit(alloc, "inherit: [node_type,", "inherit: [node_typ,")
    out = problems_of(specs_copy)
    assert "parent.on: parent 'blazar_host' does not provide 'host_name'" in out
    assert (
        "inherit: parent 'blazar_host' provides no attribute or resource 'node_typ' (did you mean 'node_type'?)" in out
    )


def test_unknown_alias_and_unknown_lookup(specs_copy):
    alloc = specs_copy / "entities" / "allocation.yaml"
    edit(alloc, "greatest(l.start_date, l.created_at)", "greatest(ll.start_date, l.created_at)")
    edit(specs_copy / "entities" / "nova_host.yaml", "table: hostname_node_type", "table: hostname_nodetype")
    out = problems_of(specs_copy)
    assert "valid.start: 'll.start_date' uses alias 'll', which no join declares (did you mean 'l'?)" in out
    assert "joins[0].table: unknown lookup 'hostname_nodetype' (did you mean 'hostname_node_type'?)" in out


def test_group_column_must_be_provided(specs_copy):
    edit(specs_copy / "entities" / "allocation.yaml", "inherit: [node_type, ", "inherit: [")
    assert "entity 'allocation': does not provide group column 'node_type'" in problems_of(specs_copy)


def test_a_file_that_is_no_spec(specs_copy):
    (specs_copy / "entities" / "odd.yaml").write_text("name: odd\n")
    assert (
        "entities/odd.yaml: not a spec: expected a top-level 'entity', 'lookup', 'report' or 'metrics' field"
        in problems_of(specs_copy)
    )


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("nodes: 1", "nodes: [1]", "resources.nodes: expected text or a number, got a list"),
        ("required: true", "required: yes", "joins[0].required: expected a boolean, got text"),
        ("entity: allocation\n", "entity: Allocation\n", "entity: 'Allocation' is not valid: a lower-case identifier"),
    ],
)
def test_schema_messages(specs_copy, old, new, message):
    edit(specs_copy / "entities" / "allocation.yaml", old, new)
    assert message in problems_of(specs_copy)


def test_an_attribute_named_like_an_engine_column_is_refused(specs_copy):
    alloc = specs_copy / "entities" / "allocation.yaml"
    edit(alloc, "  lease_id: r.lease_id", "  lease_id: r.lease_id\n  metric: r.resource_type")
    edit(alloc, "  booked_at: l.created_at", "  booked_at: l.created_at\n  valid_start: l.start_date")
    out = problems_of(specs_copy)
    assert "attributes.metric: 'metric' is a column of the engine's own; choose another name" in out
    assert "measures.valid_start: 'valid_start' is a column of the engine's own; choose another name" in out


def test_breakdowns_and_charges_are_checked_against_the_metrics_and_entities(specs_copy):
    edit(specs_copy / "metrics.yaml", "  user: {by: [user_id]", "  types: {by: [node_type]}\n  user: {by: [user_id]")
    edit(specs_copy / "metrics.yaml", "charges:\n  metric: committed", "charges:\n  metric: idle")
    out = problems_of(specs_copy)
    assert "metrics.yaml: breakdowns.types.by: 'node_type' is a column of the outputs already" in out
    assert "metrics.yaml: charges.metric: 'idle' is not a base metric (it is derived)" in out


@pytest.mark.parametrize("col", ["site", "metric", "valid_start", "__row", "projet_id"])
def test_a_breakdown_column_is_an_attribute_and_not_an_output_column(specs_copy, col):
    edit(specs_copy / "metrics.yaml", "  user: {by: [user_id]", f"  odd: {{by: [{col}]}}\n  user: {{by: [user_id]")
    out = problems_of(specs_copy)
    taken = "is a column of the outputs already"
    expected = taken if col in ("site", "metric") else "is not an attribute of any entity"
    assert f"metrics.yaml: breakdowns.odd.by: '{col}' {expected}" in out
    if col == "projet_id":
        assert "(did you mean 'project_id'?)" in out


def test_a_breakdown_or_charge_names_resources_some_entity_has(specs_copy):
    edit(specs_copy / "metrics.yaml", "resources: [nodes, vcpus]}", "resources: [nodes, vcpu]}")
    edit(specs_copy / "metrics.yaml", "  metric: committed\n", "  metric: committed\n  resource: node\n")
    out = problems_of(specs_copy)
    assert "metrics.yaml: breakdowns.project.resources: 'vcpu' is not a resource of any entity (did you mean" in out
    assert "metrics.yaml: charges.resource: 'node' is not a resource of any entity (did you mean 'nodes'?)" in out


def test_the_charge_factor_and_the_stack_resource_are_columns_some_entity_has(specs_copy):
    """`factor: su_facter` charged every lease the fallback (5,897 SU for 15,443), with no warning; `stack:
    resource: nodez` drew every chart of the report as "no data"."""
    edit(specs_copy / "metrics.yaml", "  factor: su_factor", "  factor: su_facter")
    edit(specs_copy / "metrics.yaml", "stack:\n  resource: nodes", "stack:\n  resource: nodez")
    out = problems_of(specs_copy)
    assert (
        "metrics.yaml: charges.factor: 'su_facter' is not an attribute of any entity (did you mean 'su_factor'?)" in out
    )
    assert "metrics.yaml: stack.resource: 'nodez' is not a resource of any entity (did you mean 'nodes'?)" in out


def test_an_empty_identity_and_a_legacy_group_the_days_lack_are_refused(specs_copy):
    """Both passed validation, then ended the run in a traceback (an empty fold; node_type not found)."""
    nova_host = specs_copy / "entities" / "nova_host.yaml"
    edit(nova_host, "identity: [hypervisor_hostname]", "identity: []")
    assert "entity 'nova_host': identity: must not be empty" in problems_of(specs_copy)
    edit(nova_host, "identity: []", "identity: [hypervisor_hostname]")
    edit(specs_copy / "metrics.yaml", "group_by: [node_type]", "group_by: []")
    out = problems_of(specs_copy)
    assert (
        "metrics.yaml: legacy.group_by: 'node_type' is not a column of group_by (none), by which the engine's days "
        "are split"
    ) in out
