"""Reading a spec directory: YAML syntax, then JSON Schema, then the cross-file checks.

Every phase collects all of its problems before failing, so one `engine validate` shows them all.
"""

import hashlib
import json
import re
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


class SpecLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans: only true/false, so a key named `on` stays the text 'on'.

    Dates stay text too: JSON Schema checks their form, and the engine parses them itself."""


SpecLoader.yaml_implicit_resolvers = {  # and dates stay text: JSON Schema checks their form
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_file(path: Path, display: str) -> tuple[object, yaml.Node | None]:
    """Parse with the safe loader; a syntax error names the line and shows it in context."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = yaml.load(text, Loader=SpecLoader), yaml.compose(text, Loader=SpecLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, problem = (mark.line + 1 if mark else 0), exc.problem
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character, say)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line, problem = text[: exc.position].count("\n") + 1, f"character #x{char:04x}: {exc.reason}"
    else:
        return data
    lines = text.splitlines()
    context = " | ".join(
        f"{n}: {_printable(lines[n - 1].strip())}" for n in range(max(1, line - 1), min(len(lines), line) + 1)
    )
    raise SpecError([f"{display}:{line}: YAML syntax error near line {line}: {problem} [{context}]"])


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
    """Text for a one-line message: control characters (a newline in a name) escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text))


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
        return f"expected one of {', '.join(map(str, sch['enum']))}, got {inst!r}"
    if v == "pattern":
        what = sch.get("description", f"must match {sch['pattern']}")
        return f"{inst!r} is not valid: {what[0].lower() + what[1:]}"
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
    if not path.is_file():
        raise EngineError(f"{path}: {kind} file does not exist")
    data, node = load_yaml_file(path, str(path))
    if not isinstance(data, dict):
        raise SpecError([f"{path}: expected a mapping with a top-level '{kind}' field"])
    if problems := _schema_problems(data, kind, node, str(path)):
        raise SpecError(problems)
    return data


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
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    for path in files:
        display = str(path.relative_to(root.parent) if root.parent != Path(".") else path)
        if path.suffix not in (".yaml", ".yml"):
            specs.notes.append(f"{display}: not a .yaml file, ignored")
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        try:
            data, node = load_yaml_file(path, display)
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
