"""Hostile YAML in a spec, the sites file or the exclusions file: each is refused in one line naming the file
(and the line), exit code 1, no traceback and nothing written; legitimate anchors keep working.

The loader is engine/spec/load.py (`SpecLoader`, `read_bounded`, `parse_yaml`); its limits are
MAX_BYTES, MAX_DEPTH and MAX_NODES there.
"""

import contextlib
import os
import threading
import time

import pytest

from tests.conftest import SPECS, run_cli
from tests.hardening.support import WINDOW, entity, run_error, run_ok, spec_problems
from tests.rawdata import tiny_site, write_raw

HOSTILE = "specs/entities/hostile.yaml"
BOMB = "entity: x\na0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)  # 9**10 nodes expanded: before, a MemoryError once jsonschema quoted it in a message


def refused(result, out) -> str:
    """Exit code 1, no traceback, one problem line, no output directory: that line."""
    problems = spec_problems(result)
    assert len(problems) == 1, result.stderr
    assert not out.exists()
    return problems[0]


def spec_refusal(tmp_path, specs, text: str | bytes | None = None) -> str:
    """The one line `engine validate` and `engine run` both give for specs/entities/hostile.yaml holding text
    (None: the specs as they are)."""
    if text is not None:
        (specs / "entities" / "hostile.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    line = refused(run_cli("validate", specs), tmp_path / "out")
    raw = write_raw(tmp_path / "raw", tiny_site())
    assert refused(run_cli("run", specs, "--data", raw, "--out", tmp_path / "out", *WINDOW), tmp_path / "out") == line
    return line


def config_refusal(tmp_path, kind: str, text: str | bytes | None = None) -> str:
    """The one line `engine run` gives for a sites or exclusions file holding text (None: as it is)."""
    path = tmp_path / f"{kind}.yaml"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    if kind == "sites":
        return refused(run_cli("run", SPECS, "--sites", path, "--site", "x", "--out", out, *WINDOW), out)
    raw = write_raw(tmp_path / "raw", tiny_site())
    return refused(run_cli("run", SPECS, "--data", raw, "--exclusions", path, "--out", out, *WINDOW), out)


@pytest.mark.parametrize(
    "text,line",
    [
        ("entity: x\nmetric: total\nmetric: reservable\n", "3: duplicate key 'metric' (first at line 2)"),
        ("entity: x\nsource:\n  table: a.b\n  key: id\n  table: c.d\n", "5: duplicate key 'table' (first at line 3)"),
        ("entity: x\nresources: {nodes: 1, vcpus: 2, nodes: 3}\n", "2: duplicate key 'nodes' (first at line 2)"),
        ("entity: x\n? metric\n? metric\n", "3: duplicate key 'metric' (first at line 2)"),
    ],
    ids=["top-level", "nested", "flow", "explicit-keys"],
)
def test_a_duplicate_key_names_both_lines(tmp_path, specs_copy, text, line):
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}:{line}"
    sites = "sites:\n  x: {name: X, data: raw}\n  x: {name: Y, data: raw}\n"
    assert (
        config_refusal(tmp_path, "sites", sites) == f"{tmp_path / 'sites.yaml'}:3: duplicate key 'x' (first at line 2)"
    )


def test_merge_keys_are_refused(tmp_path, specs_copy):
    text = "entity: x\nsource: &s {table: a.b, key: id}\njoins:\n  - <<: *s\n    as: y\n"
    assert spec_refusal(tmp_path, specs_copy, text) == (
        f"{HOSTILE}:4: merge keys (<<) are not supported; write the fields out"
    )


def test_an_alias_bomb_is_refused_at_the_anchor_that_crosses_the_limit(tmp_path, specs_copy):
    started = time.monotonic()
    assert spec_refusal(tmp_path, specs_copy, BOMB) == f"{HOSTILE}:7: more than 100,000 nodes (with aliases expanded)"
    exclusions = BOMB.replace("entity: x\n", "exclusions: []\n")
    assert config_refusal(tmp_path, "exclusions", exclusions) == (
        f"{tmp_path / 'exclusions.yaml'}:7: more than 100,000 nodes (with aliases expanded)"
    )
    assert time.monotonic() - started < 20  # before: 40 s, then the MemoryError


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path, specs_copy):
    text = "entity: x\njoins: &j [*j]\n"
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}:2: alias *j is inside its own anchor"


@pytest.mark.parametrize(
    "text,line",
    [
        ("entity: x\ndescription: " + "[" * 3000 + "]" * 3000 + "\n", "2: nested more than 64 levels deep"),
        ("entity: x\n" + "".join(" " * i + f"k{i}:\n" for i in range(300)), "65: nested more than 64 levels deep"),
        (
            "entity: x\na: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
            "3: nested more than 64 levels deep with aliases expanded",
        ),
    ],
    ids=["flow", "block", "through-an-alias"],
)
def test_deep_nesting_is_refused(tmp_path, specs_copy, text, line):
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}:{line}"


def test_nesting_up_to_the_limit_is_only_a_schema_problem(specs_copy):
    path = specs_copy / "entities" / "nova_host.yaml"
    path.write_text(
        path.read_text().replace("metric: total\n", "metric: total\nnesting: " + "[" * 63 + "]" * 63 + "\n")
    )
    assert spec_problems(run_cli("validate", specs_copy)) == [
        "specs/entities/nova_host.yaml:1: entity 'nova_host': unknown field 'nesting'"
    ]  # the root mapping is level 1, the innermost list level 64


def test_a_file_over_one_megabyte_is_refused_unread(tmp_path, specs_copy):
    text = "entity: x\ndescription: " + "x" * 1_000_000 + "\n"
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}: larger than 1,000,000 bytes"
    assert config_refusal(tmp_path, "sites", "sites: {}\n#" + "x" * 1_000_000) == (
        f"{tmp_path / 'sites.yaml'}: larger than 1,000,000 bytes"
    )


def test_a_huge_single_line_is_cut_in_the_message(tmp_path, specs_copy):
    text = "entity: x\ndescription: " + "a" * 900_000 + ": b: c\n"
    assert spec_refusal(tmp_path, specs_copy, text) == (
        f"{HOSTILE}:2: YAML syntax error near line 2: mapping values are not allowed here "
        f"[1: entity: x | 2: description: {'a' * 186}…]"
    )  # before: the 900 kB line whole in the message


@pytest.mark.parametrize(
    "kind,text,line",
    [
        ("spec", "- entity: x\n", ": not a spec: expected a top-level 'entity', 'lookup', 'report' or 'metrics' field"),
        ("spec", "", ": not a spec: expected a top-level 'entity', 'lookup', 'report' or 'metrics' field"),
        ("spec", "entity: x\n---\nentity: y\n", ":2: a second document (---); a file holds one"),
        ("sites", "- a\n", ": expected a mapping with a top-level 'sites' field"),
        ("sites", "sites: {}\n--- \nsites: {}\n", ":2: a second document (---); a file holds one"),
        ("exclusions", "just text\n", ": expected a mapping with a top-level 'exclusions' field"),
    ],
    ids=["spec-list", "spec-empty", "spec-two-documents", "sites-list", "sites-two-documents", "exclusions-text"],
)
def test_a_document_that_is_not_one_mapping(tmp_path, specs_copy, kind, text, line):
    if kind == "spec":
        assert spec_refusal(tmp_path, specs_copy, text) == HOSTILE + line
    else:
        assert config_refusal(tmp_path, kind, text) == f"{tmp_path / f'{kind}.yaml'}{line}"


@pytest.mark.parametrize(
    "text,line",
    [
        ("entity: x\n1: x\n", "2: key 1 is not text"),
        ("entity: x\n[a]: b\n", "2: key [a] is not text"),
        ("entity: x\n? {a: 1}\n: b\n", "2: key {a: 1} is not text"),
        ("entity: x\n~: x\n", "2: key ~ is not text"),
        ("entity: x\ntrue: x\n", "2: key true is not text"),
    ],
    ids=["int", "list", "mapping", "null", "bool"],
)
def test_a_key_that_is_not_text(tmp_path, specs_copy, text, line):
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}:{line}"


def test_a_file_that_is_not_utf8(tmp_path, specs_copy):
    text = "entity: x\ndescription: caf\xe9\n".encode("latin-1")
    assert spec_refusal(tmp_path, specs_copy, text) == f"{HOSTILE}:2: not UTF-8 text (byte 0xe9)"
    assert config_refusal(tmp_path, "exclusions", b"\xff\xfee\x00") == (
        f"{tmp_path / 'exclusions.yaml'}:1: not UTF-8 text (byte 0xff)"
    )  # UTF-16: before, read with replacement characters


def _unblock(fifo) -> None:
    """Open the FIFO's writing end, so a read that blocks despite the fix ends (and fails) instead of hanging."""
    with contextlib.suppress(OSError):  # nobody is reading: as it should be
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_path_that_is_not_a_regular_file(tmp_path, specs_copy):
    fifo = specs_copy / "entities" / "hostile.yaml"
    os.mkfifo(fifo)
    timer = threading.Timer(10, _unblock, [fifo])
    timer.start()
    try:
        assert refused(run_cli("validate", specs_copy), tmp_path / "out") == f"{HOSTILE}: not a regular file"
    finally:
        timer.cancel()
    fifo.unlink()
    os.symlink("loop.yaml", specs_copy / "entities" / "loop.yaml")
    assert spec_problems(run_cli("validate", specs_copy)) == [
        "specs/entities/loop.yaml: cannot read (Too many levels of symbolic links)"
    ]
    (tmp_path / "sites.yaml").mkdir()
    assert config_refusal(tmp_path, "sites") == f"{tmp_path / 'sites.yaml'}: cannot read (Is a directory)"
    os.symlink("exclusions.yaml", tmp_path / "exclusions.yaml")
    assert config_refusal(tmp_path, "exclusions") == (
        f"{tmp_path / 'exclusions.yaml'}: cannot read (Too many levels of symbolic links)"
    )


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf", "1.0e+400"])
def test_a_number_that_is_not_finite_is_refused(tmp_path, specs_copy, number):
    path = specs_copy / "entities" / "nova_host.yaml"
    lines = path.read_text().splitlines()
    n = lines.index("  nodes: 1") + 1
    path.write_text(path.read_text().replace("  nodes: 1\n", f"  nodes: {number}\n"))
    assert spec_refusal(tmp_path, specs_copy) == (
        f"specs/entities/nova_host.yaml:{n}: {number} is not a finite number"
    )  # before: valid, and every nova_host row rejected `invalid_value` (exit 0)


@pytest.mark.parametrize(
    "number, shown",
    [("9223372036854775808", "9223372036854775808"), ("-" + "9" * 4999, "-" + "9" * 29 + "… (5,000 characters)")],
)
def test_an_integer_outside_64_bits_is_refused(tmp_path, specs_copy, number, shown):
    """Past 4,300 digits Python's int() refuses to read it: a ValueError traceback before."""
    path = specs_copy / "entities" / "nova_host.yaml"
    n = path.read_text().splitlines().index("  nodes: 1") + 1
    path.write_text(path.read_text().replace("  nodes: 1\n", f"  nodes: {number}\n"))
    line = f"specs/entities/nova_host.yaml:{n}: {shown} is outside the 64-bit integer range"
    assert spec_refusal(tmp_path, specs_copy) == line
    sites = f"sites:\n  x:\n    name: x\n    simulate: {{generator: chameleon, seed: {number}}}\n"
    assert (
        config_refusal(tmp_path, "sites", sites)
        == f"{tmp_path / 'sites.yaml'}:4: {shown} is outside the 64-bit integer range"
    )


def test_an_expression_with_5000_digits_is_a_float_constant(tmp_path, specs_copy):
    """int() of the literal raised a ValueError traceback; as any number past Int64 it is read as a float."""
    path = specs_copy / "entities" / "nova_host.yaml"
    path.write_text(path.read_text().replace("  nodes: 1\n", f"  nodes: 0 * {'1' * 5000}\n"))
    message = run_error(tmp_path, tiny_site(), specs=specs_copy)  # inf: no row counts, none silently
    assert "rejected: nova_host {'invalid_value': 6}" in message


def test_1e400_is_text_to_yaml_an_expression_whose_rows_are_rejected(tmp_path, specs_copy):
    path = specs_copy / "entities" / "nova_host.yaml"
    path.write_text(path.read_text().replace("  nodes: 1\n", "  nodes: 1e400\n"))
    message = run_error(tmp_path, tiny_site(), specs=specs_copy)  # nothing counts: no false success
    assert "rejected: nova_host {'invalid_value': 6}" in message


@pytest.mark.parametrize("tag", ["!!binary aGk=", "!!set {a}", "!!timestamp 2024-01-01", "!!python/name:os.system"])
def test_tags_beyond_json_types_are_refused(tmp_path, specs_copy, tag):
    full = "tag:yaml.org,2002:" + tag.split()[0][2:]
    assert spec_refusal(tmp_path, specs_copy, f"entity: x\ndescription: {tag}\n") == (
        f"{HOSTILE}:2: YAML syntax error near line 2: could not determine a constructor for the tag '{full}' "
        f"[1: entity: x | 2: description: {tag}]"
    )


def test_anchors_and_aliases_used_legitimately_keep_working(tmp_path, specs_copy):
    path = specs_copy / "entities" / "nova_host.yaml"
    text = path.read_text()
    lifetime = "valid:\n  start: created_at\n  end: deleted_at\ntx:\n  start: created_at\n  end: deleted_at\n"
    assert lifetime in text
    path.write_text(text.replace(lifetime, "valid: &lifetime\n  start: created_at\n  end: deleted_at\ntx: *lifetime\n"))
    assert entity(run_ok(tmp_path / "a", tiny_site(), specs=specs_copy), "nova_host") == entity(
        run_ok(tmp_path / "b", tiny_site()), "nova_host"
    )


def test_a_syntax_error_shows_its_lines_with_secrets_hidden(tmp_path):
    """The context of a YAML error quoted a wrong file's lines whole: a MySQL option file given as
    --exclusions printed its password, and a broken sites file its db_uri's."""
    option_file = "[client]\npassword=S3cr3t-hunter2\nuser=usage_reader\n"
    line = config_refusal(tmp_path, "exclusions", option_file)
    assert line.endswith("[1: [client] | 2: password=…]") and "S3cr3t" not in line
    sites = "sites:\n  x:\n    name: x\n    db_uri: mysql://usage:S3cr3t@db.example:3306\n\tdata: raw\n"
    line = config_refusal(tmp_path, "sites", sites)
    assert "db_uri: mysql://usage:…@db.example:3306" in line and "S3cr3t" not in line
