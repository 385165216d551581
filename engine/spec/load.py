"""Reading a spec directory: YAML syntax, then JSON Schema, then the cross-file checks.

Every phase collects all of its problems before failing, so one `engine validate` shows them all.
"""

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource

from engine.errors import EngineError, SpecError
from engine.expr import did_you_mean

KINDS = ("entity", "lookup", "report", "metrics")
_TYPE_NAMES = {
    dict: "a mapping", list: "a list", str: "text", int: "an integer", float: "a number",
    bool: "a boolean", type(None): "null",
}  # fmt: skip
_SCHEMA_TYPES = {
    "object": "a mapping", "array": "a list", "string": "text", "integer": "an integer",
    "number": "a number", "boolean": "a boolean", "null": "null",
}  # fmt: skip


@dataclass
class Specs:
    """A validated spec directory: entities and lookups by name, the metrics file, and notes."""

    root: Path
    entities: dict[str, dict] = field(default_factory=dict)
    lookups: dict[str, dict] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    digest: str = ""

    def where(self, spec: dict) -> str:
        """'file: entity 'x'' prefix for messages about one spec."""
        kind = next(k for k in KINDS if k in spec)
        label = f"{kind} '{spec[kind]}'" if kind != "metrics" else "metrics"
        return f"{spec['_file']}: {label}"


def schema(kind: str) -> dict:
    """The JSON Schema of one file kind, the single definition of the format."""
    return json.loads(resources.files("engine.spec").joinpath(f"schemas/{kind}.schema.json").read_text())


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    common = schema("common")
    registry = Registry().with_resource("common.schema.json", Resource.from_contents(common))
    return jsonschema.Draft202012Validator(schema(kind), registry=registry)


MAX_BYTES = 1_000_000  # the largest bundled spec is 2.4 kB: room for any real file, and a bound on the parse
MAX_DEPTH = 64  # they nest 5 levels; 64 keeps the recursive composer far from Python's recursion limit
MAX_NODES = 100_000  # they have at most 128 nodes; counted with every alias expanded (a "billion laughs" has 10**9)
_JSON_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map")}


class YAMLRefused(yaml.MarkedYAMLError):
    """YAML that parses but is refused (a duplicate key, too deep, too big): reported as itself, not as syntax."""

    def __init__(self, mark: yaml.Mark, problem: str):
        super().__init__(problem=problem, problem_mark=mark)


class SpecLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans: only true/false, so a key named `on` stays the text 'on'.

    Dates stay text too: JSON Schema checks their form, and the engine parses them itself. What it builds is
    plain JSON data: text keys given once, finite numbers, no merge keys, no other tags, and bounded size."""

    def __init__(self, stream):
        super().__init__(stream)
        self.level, self.nodes, self.shapes = 0, 0, {}  # shapes: id(node) -> (nodes, depth), aliases expanded

    def compose_node(self, parent, index):
        """Compose with bounds: nesting before descending, since the composer recurses (3,000 levels would be
        a RecursionError); size and depth with aliases expanded after, since an alias is free to compose but
        every later stage walks what it names. Each node's shape is computed once, from its children's, and
        the running count stops a long file at its 100,001st node rather than at its end."""
        event = self.peek_event()
        self.level += 1
        if self.level > MAX_DEPTH:
            raise YAMLRefused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self.level -= 1
        if id(node) not in self.shapes:  # an alias names a node already shaped, unless it is inside that node
            if isinstance(event, yaml.AliasEvent):
                raise YAMLRefused(event.start_mark, f"alias *{event.anchor} is inside its own anchor")
            self.shapes[id(node)] = _shape(node, self.shapes)
        size, depth = self.shapes[id(node)]
        self.nodes += size if isinstance(event, yaml.AliasEvent) else 1  # its children are counted already
        if self.nodes > MAX_NODES:
            raise YAMLRefused(event.start_mark, f"more than {MAX_NODES:,} nodes (with aliases expanded)")
        if self.level + depth > MAX_DEPTH:
            raise YAMLRefused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep with aliases expanded")
        return node

    def construct_mapping(self, node, deep=False):
        """Keys must be text and given once: PyYAML keeps the last of two silently. Merge keys (`<<`, gone in
        YAML 1.2) are refused rather than flattened: an explicit key overriding a merged one is that same
        silent last-wins."""
        first = {}
        for key, _ in node.value:
            mark, source = key.start_mark, key.start_mark.buffer[key.start_mark.pointer : key.end_mark.pointer]
            if key.tag == "tag:yaml.org,2002:merge":
                raise YAMLRefused(mark, "merge keys (<<) are not supported; write the fields out")
            if key.tag != "tag:yaml.org,2002:str" or not isinstance(key, yaml.ScalarNode):
                raise YAMLRefused(mark, f"key {_printable(source)} is not text")
            if key.value in first:
                raise YAMLRefused(mark, f"duplicate key '{_printable(key.value)}' (first at line {first[key.value]})")
            first[key.value] = mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node):
        """Only finite numbers: .nan or .inf as a spec constant would turn every row's value into NaN."""
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise YAMLRefused(node.start_mark, f"{node.value} is not a finite number")
        return value


def _shape(node: yaml.Node, shapes: dict) -> tuple[int, int]:
    """(nodes, depth) of a node with its aliases expanded, from its children's, which are composed before it."""
    if isinstance(node, yaml.ScalarNode):
        return 1, 1
    children = (
        [shapes[id(n)] for pair in node.value for n in pair]
        if isinstance(node, yaml.MappingNode)
        else [shapes[id(n)] for n in node.value]
    )
    return 1 + sum(size for size, _ in children), 1 + max((depth for _, depth in children), default=0)


SpecLoader.yaml_implicit_resolvers = {  # and dates stay text: JSON Schema checks their form
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
SpecLoader.yaml_constructors = {  # JSON's types only: no !!binary, !!set, !!timestamp (and no !!python/...)
    tag: make for tag, make in yaml.SafeLoader.yaml_constructors.items() if tag is None or tag in _JSON_TAGS
}
SpecLoader.add_constructor("tag:yaml.org,2002:float", SpecLoader.construct_yaml_float)


def read_bounded(path: Path, display: str) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES. It is opened without blocking and checked on the open
    descriptor, so a FIFO cannot hang the read, and a huge file (or /dev/zero) is never read whole."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise SpecError([f"{display}: not a regular file"])
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError([f"{display}: cannot read ({exc.strerror})"]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError([f"{display}: larger than {MAX_BYTES:,} bytes"])
    return raw


def parse_yaml(raw: bytes, display: str) -> tuple[object, yaml.Node | None]:
    """Compose once with the safe loader, then build the data from that node; a syntax error names the line
    and shows it in context, a refusal names the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([f"{display}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"]) from None
    try:
        loader = SpecLoader(text)
        node = loader.get_node() if loader.check_node() else None
        if loader.check_node():
            raise YAMLRefused(loader.peek_event().start_mark, "a second document (---); a file holds one")
        return (loader.construct_document(node) if node is not None else None), node
    except YAMLRefused as exc:
        raise SpecError([f"{display}:{exc.problem_mark.line + 1}: {exc.problem}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, problem = (mark.line + 1 if mark else 0), exc.problem
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character, say)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line, problem = text[: exc.position].count("\n") + 1, f"character #x{char:04x}: {exc.reason}"
    lines = text.splitlines()
    context = " | ".join(
        f"{n}: {_printable(lines[n - 1].strip())}" for n in range(max(1, line - 1), min(len(lines), line) + 1)
    )
    raise SpecError([f"{display}:{line}: YAML syntax error near line {line}: {_printable(problem)} [{context}]"])


def _line_of(node: yaml.Node | None, path) -> int | None:
    """Line of the YAML node at a JSON path, or of its closest existing ancestor."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _printable(text) -> str:
    """Text for a one-line message: control characters (a newline in a name) escaped, and cut at 200
    characters, so that a 1 MB line in a file is not a 1 MB message."""
    text = str(text)
    cut = text[:200] + "…" * (len(text) > 200)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)


def format_path(path) -> str:
    """JSON path as the user writes it: joins[0].on."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return _printable(out)


def _sentence(err: jsonschema.ValidationError) -> str:
    """One human sentence for one schema error."""
    v, inst, sch = err.validator, err.instance, err.schema
    if v == "type":
        want = [sch["type"]] if isinstance(sch["type"], str) else sch["type"]
        return f"expected {' or '.join(_SCHEMA_TYPES[t] for t in want)}, got {_TYPE_NAMES.get(type(inst), 'a value')}"
    if v == "required":
        return f"missing required field '{err.message.split(chr(39))[1]}'"
    if v == "additionalProperties":
        known = sch.get("properties", {})
        extra = [k for k in inst if k not in known]
        return "; ".join(f"unknown field '{_printable(k)}'{did_you_mean(k, known)}" for k in extra)
    if v == "enum":
        return f"expected one of {', '.join(map(str, sch['enum']))}, got {_printable(repr(inst))}"
    if v == "pattern":
        what = sch.get("description", f"must match {sch['pattern']}")
        return f"{_printable(repr(inst))} is not valid: {what[0].lower() + what[1:]}"
    if v in ("minProperties", "minItems", "minLength"):
        return "must not be empty"
    if v == "uniqueItems":
        return "has duplicate items"
    if v == "dependentRequired":
        return err.message.replace("is a dependency of", "is needed by")
    if v in ("anyOf", "oneOf") and err.context:
        kinds = [e for e in err.context if e.validator == "type"]
        if len(kinds) == len(err.context):
            want = sorted(
                {
                    _SCHEMA_TYPES[t]
                    for e in kinds
                    for t in ([e.validator_value] if isinstance(e.validator_value, str) else e.validator_value)
                }
            )
            return f"expected {' or '.join(want)}, got {_TYPE_NAMES.get(type(inst), 'a value')}"
        return _sentence(jsonschema.exceptions.best_match(err.context))
    return err.message


def _schema_problems(data: dict, kind: str, node, display: str) -> list[str]:
    label = f"{kind} '{_printable(data[kind])}'" if isinstance(data.get(kind), str) else kind
    problems = []
    for err in sorted(_validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "propertyNames":
            continue  # reported by its own 'pattern' error on the key
        line = _line_of(node, path)
        where = f"{display}:{line}" if line else display
        field_path = format_path(path)
        problems.append(f"{where}: {label}: {field_path + ': ' if field_path else ''}{_sentence(err)}")
    return problems


def read_config(path: str | Path, kind: str) -> dict:
    """A configuration file (sites, exclusions) read safely and checked against its own schema."""
    path = Path(path)
    if not os.path.lexists(path):
        raise EngineError(f"{path}: {kind} file does not exist")
    data, node = parse_yaml(read_bounded(path, str(path)), str(path))
    if not isinstance(data, dict):
        raise SpecError([f"{path}: expected a mapping with a top-level '{kind}' field"])
    if problems := _schema_problems(data, kind, node, str(path)):
        raise SpecError(problems)
    return data


MAX_FILES = 2_000  # a spec directory holds tens of files: `engine validate ~` must not walk the whole disk


def _spec_files(root: Path):
    """Files below root, hidden ones aside; more than MAX_FILES means this is no spec directory."""
    found = 0
    for path in root.rglob("*"):
        if path.is_dir() or any(s.startswith(".") for s in path.relative_to(root).parts):
            continue
        found += 1
        if found > MAX_FILES:
            raise EngineError(f"{root}: more than {MAX_FILES:,} files: not a spec directory")
        yield path


def load_specs(root: str | Path) -> Specs:
    """Load and validate every spec under root; raises SpecError listing every problem found."""
    from engine.spec.checks import check_specs

    root = Path(root)
    if not root.exists():
        raise EngineError(f"{root}: spec path does not exist")
    if not root.is_dir():
        raise EngineError(f"{root}: spec path is not a directory")
    specs = Specs(root=root)
    problems: list[str] = []
    digest = hashlib.sha256()
    files = sorted(_spec_files(root))
    for path in files:
        display = str(path.relative_to(root.parent) if root.parent != Path(".") else path)
        if path.suffix not in (".yaml", ".yml"):
            specs.notes.append(f"{display}: not a .yaml file, ignored")
            continue
        try:
            raw = read_bounded(path, display)
            digest.update(str(path.relative_to(root)).encode() + b"\0" + raw + b"\0")
            data, node = parse_yaml(raw, display)
        except SpecError as exc:
            problems += exc.problems
            continue
        kind = next((k for k in KINDS if isinstance(data, dict) and k in data), None)
        if kind is None:
            problems.append(
                f"{display}: not a spec: expected a top-level 'entity', 'lookup', 'report' or 'metrics' field"
            )
            continue
        found = _schema_problems(data, kind, node, display)
        if found:
            problems += found
            continue
        data["_file"] = display
        if kind == "metrics":
            if specs.metrics:
                problems.append(f"{display}: metrics are already defined in {specs.metrics['_file']}")
            specs.metrics = data
            continue
        name, table = data[kind], {"entity": specs.entities, "lookup": specs.lookups, "report": specs.reports}[kind]
        other = specs.entities.get(name) or specs.lookups.get(name) or specs.reports.get(name)
        if other:
            problems.append(f"{display}: {kind} '{name}' is already defined in {other['_file']}")
            continue
        table[name] = data
    if not files:
        raise EngineError(f"{root}: no spec files found (expected entities/*.yaml, lookups/*.yaml, metrics.yaml)")
    if problems:
        raise SpecError(problems)
    if not specs.entities:
        raise SpecError([f"{root}: no entity specs found"])
    specs.digest = digest.hexdigest()
    check_specs(specs)
    return specs
