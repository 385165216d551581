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


@pytest.mark.parametrize("kind", ["common", "entity", "lookup", "report", "metrics", "sites"])
def test_every_schema_field_is_documented(kind):
    missing = sorted(name for name in field_names(schema(kind)) if f"`{name}`" not in DOC)
    assert not missing, f"docs/specs.md does not describe: {missing}"
