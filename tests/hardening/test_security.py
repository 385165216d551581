"""Security: YAML is loaded safely, expressions are SQL for Polars (never Python), spec paths stay inside the
data directory, and a database password never reaches an output or a message.

With a real MariaDB server, tests/db/test_extract.py also greps every extracted file and message for the
password of a real account.
"""

import ast
import http.server
import json
import shutil
import threading

import pytest
import yaml

from engine.io.raw import RawDir
from engine.spec.load import load_specs
from engine.spec.yaml import SpecLoader
from tests.conftest import ROOT, SPECS, run_cli
from tests.hardening.support import WINDOW, one_error, spec_problems
from tests.rawdata import tiny_site, write_raw

TAG = '!!python/object/apply:os.system ["touch {}"]'


def test_python_yaml_tags_are_refused_in_specs_sites_and_exclusions(tmp_path, specs_copy):
    marker = tmp_path / "pwned"
    (specs_copy / "entities" / "evil.yaml").write_text(f"entity: {TAG.format(marker)}\n")
    (tmp_path / "sites.yaml").write_text(f"sites: {TAG.format(marker)}\n")
    (tmp_path / "exclusions.yaml").write_text(f"exclusions: {TAG.format(marker)}\n")
    refusal = "YAML syntax error near line 1: could not determine a constructor for the tag "
    found = spec_problems(run_cli("validate", specs_copy))
    assert found[0].startswith(
        f"specs/entities/evil.yaml:1: {refusal}'tag:yaml.org,2002:python/object/apply:os.system'"
    )
    found = spec_problems(run_cli("run", SPECS, "--sites", tmp_path / "sites.yaml", "--site", "x"))
    assert found[0].startswith(f"{tmp_path / 'sites.yaml'}:1: {refusal}")
    raw = write_raw(tmp_path / "raw", tiny_site())
    found = spec_problems(
        run_cli("run", SPECS, "--data", raw, "--exclusions", tmp_path / "exclusions.yaml", "--out", tmp_path / "o")
    )
    assert found[0].startswith(f"{tmp_path / 'exclusions.yaml'}:1: {refusal}")
    assert not marker.exists()
    assert issubclass(SpecLoader, yaml.SafeLoader)


@pytest.mark.parametrize(
    "expression,reason",
    [
        ("eval('1')", "unknown function 'eval'"),
        ("__import__('os').system('touch {marker}')", "a method call or field access (x.f(…)) is not allowed"),
        ('exec(\'open("{marker}", "w")\')', "unknown function 'exec'"),
    ],
)
def test_expressions_are_compiled_by_the_sql_parser_never_run_as_python(tmp_path, specs_copy, expression, reason):
    marker = tmp_path / "pwned"
    path = specs_copy / "entities" / "nova_host.yaml"
    path.write_text(
        path.read_text().replace("  vcpus: vcpus ", f"  vcpus: {json.dumps(expression.format(marker=marker))} ")
    )
    found = spec_problems(run_cli("validate", specs_copy))
    assert found[0].startswith("specs/entities/nova_host.yaml: entity 'nova_host': resources.vcpus: cannot parse ")
    assert reason in found[0]
    assert not marker.exists()


# --- the expression sandbox: spec text never reaches an SQL engine ------------------------------------------

SECRET = "root-secret-first-line"  # the first line of the marker file: Polars SQL put it in its error message


@pytest.fixture
def http_requests():
    """A web server on 127.0.0.1 that records every request it gets: (its URL, the list of request paths)."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"column_1\nfrom-the-web\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


SUBQUERY = "a subquery (SELECT …) is not allowed in a spec expression"
HOSTILE = [
    ("hypervisor_type || (SELECT string_agg(column_1, ',') FROM read_csv('{file}'))", SUBQUERY),
    ("read_csv('{file}')", "unknown function 'read_csv'"),
    ("read_parquet('{file}')", "unknown function 'read_parquet'"),
    ("read_json('{file}')", "unknown function 'read_json'"),
    ("read_csv('{url}/x.csv')", "unknown function 'read_csv'"),
    ("read_parquet('{url}/x.parquet')", "unknown function 'read_parquet'"),
    ("read_json('{url}/x.json')", "unknown function 'read_json'"),
    ("vcpus + (SELECT count(*) FROM read_csv('{url}/x.csv'))", SUBQUERY),
    ("EXISTS (SELECT * FROM read_csv('{file}'))", "a subquery (EXISTS (SELECT …)) is not allowed in a spec expression"),
    ("vcpus IN (SELECT column_1 FROM read_csv('{file}'))", SUBQUERY),
    (
        "vcpus UNION SELECT column_1 FROM read_csv('{file}')",
        "a set operation (UNION, INTERSECT, EXCEPT) is not allowed in a spec expression",
    ),
    ("vcpus -- read_csv('{file}')", "comments are not allowed"),
    ("vcpus /* read_csv('{url}') */", "comments are not allowed"),
    ("vcpus; SELECT * FROM read_csv('{file}')", "only one expression is allowed (no ';')"),
    (" + ".join(["vcpus"] * 10_000), "too long: 79,997 characters (at most 10,000)"),
    ("(" * 3_000 + "vcpus" + ")" * 3_000, "nested too deeply (more than 64 levels)"),
    ("+".join(["vcpus"] * 1_600), "too large: 4,799 nodes (at most 500)"),
    (
        "__import__('os').system('cat {file}')",
        "a method call or field access (x.f(…)) is not allowed in a spec expression",
    ),
    ("lpad(hypervisor_type, 9999999999, 'x')", "unknown function 'lpad'"),
    ("CAST(vcpus AS DECIMAL(100, 2))", "numeric(100, 2): the precision is 1 to 38 and the scale 0 to the precision"),
]


HOSTILE_IDS = [
    "subquery-reading-a-file",
    "read_csv-file",
    "read_parquet-file",
    "read_json-file",
    "read_csv-url",
    "read_parquet-url",
    "read_json-url",
    "subquery-reading-a-url",
    "exists",
    "in-subquery",
    "union",
    "line-comment",
    "block-comment",
    "second-statement",
    "sum-of-10000-terms",
    "3000-parentheses",
    "sum-of-1600-terms",
    "python",
    "lpad",
    "decimal-100",
]


@pytest.mark.parametrize("expression,refusal", HOSTILE, ids=HOSTILE_IDS)
def test_a_hostile_expression_is_refused_in_one_line_and_nothing_is_read(
    tmp_path, specs_copy, http_requests, expression, refusal
):
    url, requests = http_requests
    marker = tmp_path / "marker.csv"
    marker.write_text(f"{SECRET}\nsecond line\n")
    text = expression.format(file=marker, url=url)
    path = specs_copy / "entities" / "nova_host.yaml"
    path.write_text(path.read_text().replace("  vcpus: vcpus ", f"  vcpus: {json.dumps(text)} "))
    raw = write_raw(tmp_path / "raw", tiny_site())
    for command in (("validate", specs_copy), ("run", specs_copy, "--data", raw, "--out", tmp_path / "out")):
        result = run_cli(*command)
        where = "specs/entities/nova_host.yaml: entity 'nova_host': resources.vcpus"
        assert spec_problems(result) == [f"{where}: cannot parse {text!r}: {refusal}"]
        assert SECRET not in result.output + result.stderr
    assert requests == []
    assert not (tmp_path / "out").exists()


def test_no_engine_code_hands_text_to_an_sql_engine():
    """pl.sql_expr, SQLContext, DataFrame.sql and DuckDB would run table functions named in a spec."""
    calls = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("sql_expr", "sql", "SQLContext", "sql_query"):
                calls.append(f"{path.name}: .{node.attr}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                calls += [f"{path.name}: import {n}" for n in names if n.split(".")[0] == "duckdb"]
    assert calls == []


def test_the_engine_never_calls_eval_exec_or_an_unsafe_yaml_loader():
    calls = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
                if name in ("eval", "exec", "compile", "__import__") and owner in ("", "builtins"):
                    calls.append(f"{path.name}: {name}")
                if owner == "yaml" and name in ("load", "compose", "load_all", "unsafe_load", "full_load"):
                    loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                    if not (isinstance(loader, ast.Name) and loader.id == "SpecLoader"):
                        calls.append(f"{path.name}: yaml.{name} without the safe SpecLoader")
    assert calls == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "nova/../../x", "..", "nova..x", "nova.x/y"])
def test_table_names_cannot_leave_the_data_dir(specs_copy, name):
    for path, old in (
        (specs_copy / "entities" / "nova_host.yaml", "table: nova.compute_nodes"),
        (specs_copy / "entities" / "allocation.yaml", "table: blazar.leases"),
        (specs_copy / "metrics.yaml", "table: chameleon_usage.node_usage_report_cache"),
    ):
        path.write_text(path.read_text().replace(old, f"table: {json.dumps(name)}", 1))
    found = spec_problems(run_cli("validate", specs_copy))
    what = f"'{name}' is not valid: a raw table `schema.table` (read from RAW_DIR/schema.table.parquet) or the name of a lookup."
    assert sorted(p.split(": ", 2)[2] for p in found) == [
        f"joins[1].table: {what}",
        f"legacy.table: {what}",
        f"source.table: {what}",
    ]


def test_every_table_of_the_bundled_specs_is_a_file_inside_the_data_dir(tmp_path):
    from engine.graph import build_graph, tables_for

    raw = RawDir(tmp_path)
    tables, _ = tables_for(build_graph(load_specs(SPECS)))
    assert len(tables) > 10
    for table in tables:
        assert raw.file(table).resolve().parent == tmp_path.resolve()


def test_a_database_password_is_masked_everywhere(tmp_path, monkeypatch):
    secret = "hunter2-Zq9"  # in the sites file and in $HARDENING_DB_PASSWORD
    monkeypatch.setenv("HARDENING_DB_PASSWORD", secret)
    write_raw(tmp_path / "raw" / "site", tiny_site())
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sites.yaml").write_text(
        "sites:\n"
        f"  lit: {{name: literal, data: raw/site, db_uri: 'mysql://reader:{secret}@127.0.0.1:1'}}\n"
        "  env: {name: from env, data: raw/site, db_uri: 'mysql://reader:${HARDENING_DB_PASSWORD}@127.0.0.1:1'}\n"
    )
    sites = tmp_path / "etc" / "sites.yaml"
    outputs = [run_cli("run", SPECS, "--sites", sites, "--site", "lit", "--out", tmp_path / "out", *WINDOW)]
    assert outputs[0].exit_code == 0
    for site in ("lit", "env"):  # no server answers on port 1: the error names the masked URI
        outputs.append(run_cli("extract", "--site", site, "--sites", sites, "--specs", SPECS, "--timeout", "2"))
        assert one_error(outputs[-1]).startswith("reader@127.0.0.1:1: cannot reach 127.0.0.1:1")
    outputs.append(
        run_cli("export", tmp_path / "out", "--db-uri", f"mysql://reader:{secret}@127.0.0.1:1", "--table", "x.y")
    )
    assert one_error(outputs[-1]).startswith("reader@127.0.0.1:1: cannot reach")
    for result in outputs:
        assert secret not in result.stdout + result.stderr
    shutil.move(sites, tmp_path / "sites.yaml.kept")  # the one file meant to hold it
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert [p.name for p in leaked] == ["sites.yaml.kept"]


def test_only_braced_environment_variables_expand_in_a_uri(monkeypatch):
    from engine.errors import EngineError
    from engine.extract import Database

    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("HARDENING_PW", "s3cr%40t")
    assert Database("mysql://u:pa$HOME@db:3306").password == "pa$HOME"  # a `$` in a password stays itself
    assert Database("mysql://u:${HARDENING_PW}@db:3306/nova").password == "s3cr@t"
    assert Database("mysql://u:${HARDENING_PW}@db:3306/nova").shown == "u@db:3306/nova"
    monkeypatch.delenv("HARDENING_PW")
    with pytest.raises(EngineError, match="the environment variable HARDENING_PW is not set"):
        Database("mysql://u:${HARDENING_PW}@db:3306")
