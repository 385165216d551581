"""Specs that load but cannot run on the data: unknown columns, type errors, keys of different types.

What `engine validate` catches (YAML, schema, references, cycles, unparseable expressions) is tested in
tests/spec/test_validate.py; here the data is needed to see the problem, so `engine run` reports it, in
one line naming the file, the spec, the field and the column or type.
"""

import polars as pl
import pytest

from tests.conftest import run_cli
from tests.hardening.support import entity, run_error, run_ok, spec_problems
from tests.rawdata import tiny_site

PREFIX = {
    "nova_host": "specs/entities/nova_host.yaml: entity 'nova_host': ",
    "allocation": "specs/entities/allocation.yaml: entity 'allocation': ",
    "reserved_instance": "specs/entities/reserved_instance.yaml: entity 'reserved_instance': ",
    "ondemand_instance": "specs/entities/ondemand_instance.yaml: entity 'ondemand_instance': ",
    "instance_events": "specs/lookups/instance_events.yaml: lookup 'instance_events': ",
    "host_node_type": "specs/lookups/host_node_type.yaml: lookup 'host_node_type': ",
}
FILES = {
    "nova_host": "entities/nova_host.yaml",
    "allocation": "entities/allocation.yaml",
    "reserved_instance": "entities/reserved_instance.yaml",
    "ondemand_instance": "entities/ondemand_instance.yaml",
    "instance_events": "lookups/instance_events.yaml",
    "host_node_type": "lookups/host_node_type.yaml",
}


def edit(specs, spec: str, old: str, new: str) -> None:
    path = specs / FILES[spec]
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "spec,old,new,message",
    [
        # expressions that read a column the data does not have
        (
            "nova_host",
            "end: deleted_at",
            "end: deleted_att",
            "valid.end: no column 'deleted_att' in nova.compute_nodes (did you mean 'deleted_at'?)",
        ),
        (
            "instance_events",
            "result = 'Success'",
            "reslt = 'Success'",
            "scope[0]: no column 'reslt' in nova.instance_actions_events (did you mean 'result'?)",
        ),
        (
            "ondemand_instance",
            "asof: {left: created_at,",
            "asof: {left: created_att,",
            "joins[3].asof: no column 'created_att' in nova.instances (did you mean 'created_at'?)",
        ),
        # type errors inside expressions, found when the plan is typed
        (
            "nova_host",
            "vcpus: vcpus ",
            "vcpus: hypervisor_hostname * 2 ",
            "resources.vcpus: arithmetic on dtypes str and dyn int is not allowed (lhs: column 'hypervisor_hostname', "
            "rhs: expression `dyn int: 2`); try an explicit cast first",
        ),
        (
            "nova_host",
            "vcpus: vcpus ",
            "vcpus: hypervisor_hostname ",
            "resources.vcpus: expected a number, got String from 'hypervisor_hostname'",
        ),
        (
            "nova_host",
            "start: created_at\n  end",
            "start: vcpus\n  end",
            "valid.start: expected a timestamp, got Int64 from 'vcpus'",
        ),
        (
            "reserved_instance",
            "when: launched_at IS NULL",
            "when: vcpus",
            "rules[0].when: expected a condition (true or false), got Int64 from 'vcpus'",
        ),
        (
            "instance_events",
            "result = 'Success'",
            "result",
            "scope[0]: expected a condition (true or false), got String from 'result'",
        ),
        (
            "ondemand_instance",
            "asof: {left: created_at, right: created_at}",
            "asof: {left: created_at, right: vcpus}",
            "joins[3].asof: 'vcpus' is Int64, not a timestamp",
        ),
        # type errors Polars finds only when it runs the plan: the field is found by trying each expression
        (
            "allocation",
            "r.resource_type = 'physical:host'",
            "r.resource_type = 1",
            "scope[0]: cannot compare string with numeric type (i32) (reading blazar.computehost_allocations, "
            "blazar.reservations, blazar.leases, blazar.computehosts)",
        ),
        (
            "host_node_type",
            "node_type: last(capability_value)",
            "node_type: sum(capability_value)",
            "aggregate.node_type: `sum` operation not supported for dtype `str`",
        ),
        (
            "nova_host",
            "vcpus: vcpus ",
            "vcpus: length(CAST(CAST(vcpus + 9223372036854775000 AS timestamp) AS text)) ",
            "resources.vcpus: Polars failed internally (an expression it cannot run, or a damaged file): invalid or "
            "out-of-range datetime (reading nova.compute_nodes, hostname_node_type)",
        ),
    ],
    ids=[
        "column",
        "lookup-column",
        "asof-column",
        "text-times-int",
        "text-resource",
        "int-as-time",
        "rule-not-a-condition",
        "scope-not-a-condition",
        "asof-on-int",
        "text-equals-int",
        "sum-of-text",
        "polars-panic",
    ],
)
def test_one_line_names_file_spec_field_and_problem(tmp_path, specs_copy, spec, old, new, message):
    edit(specs_copy, spec, old, new)
    assert run_error(tmp_path, tiny_site(), specs=specs_copy) == PREFIX[spec] + message


def test_text_that_is_no_time_among_times_stops_the_run_naming_the_field_and_column(tmp_path, specs_copy):
    """Text among timestamps is read as a time (a dump converted through CSV); text that is no time is not
    skipped as a null, which would let least(end, resource_type) pass silently. Polars cannot raise from a plan:
    the message is a strict cast's, read back without Polars' wording (expr.stopped)."""
    edit(specs_copy, "allocation", "least(l.end_date, l.deleted_at)", "least(l.end_date, r.resource_type)")
    message = run_error(tmp_path, tiny_site(), specs=specs_copy)
    assert message.startswith(
        PREFIX["allocation"]
        + "valid.end: r.resource_type holds text that is no timestamp (an ISO form such as 2024-01-31 08:00:00) "
        "(reading blazar.computehost_allocations"
    )


def test_a_value_that_cannot_be_cast_names_the_field(tmp_path, specs_copy):
    edit(specs_copy, "nova_host", "hypervisor_type: hypervisor_type", "hypervisor_type: hypervisor_hostname::int")
    message = run_error(tmp_path, tiny_site(), specs=specs_copy)
    assert message.startswith(
        PREFIX["nova_host"] + "attributes.hypervisor_type: conversion from `str` to `i32` failed in column "
        "'hypervisor_hostname'"
    )


def test_integer_arithmetic_that_wraps_around_names_the_field_and_the_operation(tmp_path, specs_copy):
    # MariaDB's INT is an Int32 column: MiB to bytes wraps at 2 GiB, and Polars would count 0 silently
    edit(specs_copy, "nova_host", "memory_mb: memory_mb", "memory_mb: memory_mb * 1048576")
    int32 = {"nova.compute_nodes": {"memory_mb": pl.Int32}}
    message = run_error(tmp_path, tiny_site(), specs=specs_copy, schemas=int32)
    assert message == (
        PREFIX["nova_host"] + "resources.memory_mb: Int32 overflow in memory_mb * 1048576: cast an operand to bigint "
        "or double first (reading nova.compute_nodes, hostname_node_type)"
    )
    edit(specs_copy, "nova_host", "memory_mb: memory_mb * 1048576", "memory_mb: CAST(memory_mb AS bigint) * 1048576")
    run_ok(tmp_path, tiny_site(), specs=specs_copy, schemas=int32)
    validated = pl.read_parquet(tmp_path / "out" / "validated" / "nova_host.parquet")
    assert validated["memory_mb"].unique().to_list() == [196608 * 1048576]  # the way out the message gives


def test_a_parent_link_on_keys_of_different_types(tmp_path, specs_copy):
    # the allocation's float compute_host_id (10.0) against the Blazar host's integer id (10): the same host
    edit(specs_copy, "allocation", "on: {hypervisor_hostname: hypervisor_hostname}", "on: {compute_host_id: id}")
    tables = tiny_site()
    for row in tables["blazar.computehost_allocations"]:
        row["compute_host_id"] = float(row["compute_host_id"])
    m = run_ok(tmp_path, tables, specs=specs_copy)
    assert entity(m, "allocation") == (5, 1, 3, {"missing_fk": 1})  # A3 only: its reservation is missing
    assert m["entities"]["allocation"]["hierarchy"] == {"clamped": 1, "direct": 2}  # A5 cut to host 11's end


# Found by the fuzzer (bench/fuzz_spec_loader.py): both were a traceback or a message broken over lines.


def test_a_control_character_is_a_yaml_error_with_its_line(specs_copy):
    path = specs_copy / "entities" / "nova_host.yaml"
    lines = path.read_text().splitlines()
    n = lines.index("metric: total") + 1
    path.write_text(path.read_text().replace("metric: total", "metric: \x12total"))
    assert spec_problems(run_cli("validate", specs_copy)) == [
        f"specs/entities/nova_host.yaml:{n}: YAML syntax error near line {n}: character #x0012: special characters "
        f"are not allowed [{n - 1}: {lines[n - 2].strip()} | {n}: metric: \\x12total]"
    ]


def test_a_name_with_a_newline_keeps_every_problem_on_one_line(specs_copy):
    (specs_copy / "lookups" / "odd.yaml").write_text(
        'lookup: "a\\nb"\ndescription: x\nsource: {table: a.b}\n"c\\nd": 1\n'
    )
    assert spec_problems(run_cli("validate", specs_copy)) == [
        "specs/lookups/odd.yaml:1: lookup 'a\\x0ab': unknown field 'c\\x0ad'",
        "specs/lookups/odd.yaml:1: lookup 'a\\x0ab': lookup: 'a\\nb' is not valid: a lower-case identifier: letters "
        "a-z, digits and _, not starting with a digit (at most 64).",
    ]
