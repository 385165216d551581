"""docs/specs.md describes every field the JSON Schemas define (the schemas are the one definition)."""

from pathlib import Path

import pytest

from engine.spec.load import schema

DOC = (Path(__file__).resolve().parents[2] / "docs" / "specs.md").read_text()


def field_names(node) -> set[str]:
    names = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= field_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= field_names(value)
    return names


@pytest.mark.parametrize("kind", ["common", "entity", "lookup", "report", "metrics", "sites", "exclusions"])
def test_every_schema_field_is_documented(kind):
    missing = sorted(name for name in field_names(schema(kind)) if f"`{name}`" not in DOC)
    assert not missing, f"docs/specs.md does not describe: {missing}"


def test_every_whitelisted_function_type_and_date_part_is_documented():
    """docs/specs.md lists the whole expression whitelist: each function as it is called, each cast type, each unit;
    and every function its tables list is one the engine knows."""
    import re

    from engine.expr import AGGREGATES, CAST_NAMES, DATE_PARTS, FUNCTIONS

    documented = [f"`{name}(" for name in [*FUNCTIONS, *AGGREGATES]] + [
        f"`{name}`" for name in [*CAST_NAMES, *DATE_PARTS]
    ]
    missing = [name for name in documented if name not in DOC]
    assert not missing, f"docs/specs.md does not describe: {missing}"
    tables = DOC[DOC.index("| function | result |") : DOC.index("Types a cast may name")]
    listed = set(re.findall(r"^\| `(\w+)\(|, `(\w+)\(", tables, re.M))
    assert {name for pair in listed for name in pair if name} - {"extract"} == FUNCTIONS.keys() | AGGREGATES.keys()
