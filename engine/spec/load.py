"""Reading a spec directory: YAML, then JSON Schema (every problem at once, each with its file and line), then
the defaults the schema declares, then the typed model, then the checks across files.
"""

import copy
import hashlib
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource

from engine.errors import EngineError, SpecError
from engine.expr import did_you_mean
from engine.spec.model import Specs, parse
from engine.spec.yaml import parse_yaml, printable, read_bounded

KINDS = ("entity", "lookup", "report", "metrics")
_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "text", int: "an integer", float: "a number", bool: "a boolean"}
_TYPE_NAMES[type(None)] = "null"
_SCHEMA_TYPES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer"}
_SCHEMA_TYPES |= {"number": "a number", "boolean": "a boolean", "null": "null"}


@cache
def schema(kind: str) -> dict:
    """The JSON Schema of one file kind, the single definition of the format (and of its defaults)."""
    return json.loads(resources.files("engine.spec").joinpath(f"schemas/{kind}.schema.json").read_text())


def _pattern(*call):
    """JSON Schema's `pattern`, with `$` the end of the text: Python's `re.search` also lets it match before a
    final newline, so an entity named 'evil\n' was valid and broke explain's formats and file names. (A
    keyword is called with the validator, its value, the instance and the schema.)"""
    _, pattern, instance, _ = call
    if not isinstance(instance, str):
        return
    if not re.search(pattern, instance) or (pattern.endswith("$") and instance.endswith("\n")):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("common.schema.json", Resource.from_contents(schema("common")))
    return Validator(schema(kind), registry=registry)


def _resolved(node: dict, doc: str) -> tuple[dict, str]:
    """A schema node of schema `doc` with its `$ref` followed (into the same schema, or into another file),
    and the schema the result belongs to."""
    while "$ref" in node:
        file, _, pointer = node["$ref"].partition("#")
        doc = file.removesuffix(".schema.json") or doc
        target = schema(doc)
        for part in filter(None, pointer.split("/")):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node, doc


def with_defaults(data, kind: str, node: dict | None = None):
    """The data of a file of this kind with every absent optional field set to its schema `default`, at
    any depth."""
    node, kind = _resolved(schema(kind) if node is None else node, kind)
    if isinstance(data, list) and "items" in node:
        return [with_defaults(item, kind, node["items"]) for item in data]
    if not isinstance(data, dict):
        return data
    props = node.get("properties", {})
    filled = {k: with_defaults(v, kind, props[k]) if k in props else v for k, v in data.items()}
    for name in (k for k in props if k not in data):
        sub, doc = _resolved(props[name], kind)
        if "default" in sub:
            filled[name] = with_defaults(copy.deepcopy(sub["default"]), doc, sub)
    return filled


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


def format_path(path) -> str:
    """JSON path as the user writes it: joins[0].on."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return printable(out)


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
        return "; ".join(f"unknown field '{printable(k)}'{did_you_mean(k, known)}" for k in extra)
    if v == "enum":
        return f"expected one of {', '.join(map(str, sch['enum']))}, got {printable(repr(inst))}"
    if v == "pattern":
        what = sch.get("description", f"must match {sch['pattern']}")
        return f"{printable(repr(inst))} is not valid: {what[0].lower() + what[1:]}"
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
    return err.message


def _cause(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The error to tell: where a value has the type of one alternative of an anyOf, what is wrong inside
    that alternative (a JSONPath's steps, a list's item), not that the value is not of another alternative's
    type."""
    while err.validator in ("anyOf", "oneOf") and err.context:
        inside = [e for e in err.context if e.validator != "type" or e.relative_path]
        if not inside:
            break
        err = jsonschema.exceptions.best_match(inside)
    return err


def schema_problems(data: dict, kind: str, node=None, *, display: str) -> list[str]:
    """One line per schema error, naming the file (and the line, given the YAML node) and the field."""
    label = f"{kind} '{printable(data[kind])}'" if isinstance(data.get(kind), str) else kind
    problems = []
    for found in sorted(_validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        err = _cause(found)
        path = list(err.absolute_path)
        if err.validator == "propertyNames":
            continue  # reported by its own 'pattern' error on the key
        line = _line_of(node, path)
        where = f"{display}:{line}" if line else display
        field_path = format_path(path)
        problems.append(f"{where}: {label}: {field_path + ': ' if field_path else ''}{_sentence(err)}")
    return problems


def read_config(path: str | Path, kind: str) -> dict:
    """A configuration file (sites, exclusions) read safely, checked against its own schema, defaults filled."""
    path = Path(path)
    if not path.is_symlink() and not path.exists():
        raise EngineError(f"{path}: {kind} file does not exist")
    data, node = parse_yaml(read_bounded(path, str(path)), str(path))
    if not isinstance(data, dict):
        raise SpecError([f"{path}: expected a mapping with a top-level '{kind}' field"])
    if problems := schema_problems(data, kind, node, display=str(path)):
        raise SpecError(problems)
    return with_defaults(data, kind)


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
    parsed, notes, problems, digest = [], [], [], hashlib.sha256()
    files = sorted(_spec_files(root))
    for path in files:
        display = str(path.relative_to(root.parent) if root.parent != Path(".") else path)
        if path.suffix not in (".yaml", ".yml"):
            notes.append(f"{display}: not a .yaml file, ignored")
            continue
        try:
            raw = read_bounded(path, display)
            digest.update(str(path.relative_to(root)).encode() + b"\0" + raw + b"\0")
            parsed.append(_spec(*parse_yaml(raw, display), display))
        except SpecError as exc:
            problems += exc.problems
    if not files:
        raise EngineError(f"{root}: no spec files found (expected entities/*.yaml, lookups/*.yaml, metrics.yaml)")
    specs = _collect(root, parsed, problems=problems, notes=notes, digest=digest.hexdigest())
    check_specs(specs)
    return specs


def _spec(data, node, display: str):
    """One spec file's typed spec; its schema problems as a SpecError."""
    kind = next((k for k in KINDS if isinstance(data, dict) and k in data), None)
    if kind is None:
        raise SpecError(
            [f"{display}: not a spec: expected a top-level 'entity', 'lookup', 'report' or 'metrics' field"]
        )
    if problems := schema_problems(data, kind, node, display=display):
        raise SpecError(problems)
    return parse(kind, with_defaults(data, kind), display)


def _collect(root: Path, parsed: list, *, problems: list[str], notes: list[str], digest: str) -> Specs:
    """The parsed specs by kind and name; a name defined twice names both files."""
    metrics = [p for p in parsed if not hasattr(p, "kind")]
    named: dict = {}
    for spec in (p for p in parsed if hasattr(p, "kind")):
        if spec.name in named:
            problems.append(f"{spec.file}: {spec.kind} '{spec.name}' is already defined in {named[spec.name].file}")
        else:
            named[spec.name] = spec
    problems += [f"{m.file}: metrics are already defined in {metrics[0].file}" for m in metrics[1:]]
    if problems:
        raise SpecError(problems)
    archives = _archives(named.values(), problems)
    if problems:
        raise SpecError(problems)
    kinds = {kind: {n: s for n, s in named.items() if s.kind == kind} for kind in ("entity", "lookup", "report")}
    if not kinds["entity"]:
        raise SpecError([f"{root}: no entity specs found"])
    return Specs(
        root=root,
        entities=kinds["entity"],
        lookups=kinds["lookup"],
        reports=kinds["report"],
        metrics=metrics[0] if metrics else None,
        notes=tuple(notes),
        digest=digest,
        by_name=named,
        archives=archives,
    )


def _archives(specs, problems: list[str]) -> dict:
    """Every archive declared, by the live raw table it belongs to: one declaration per table (repeated
    identically by as many specs as like), the archive a raw table of its own, of one live table only."""
    found: dict = {}
    for spec in specs:
        for field, live, archive in spec.archived():
            where = f"{spec.where}: {field}"
            first = found.setdefault(live, archive)
            owner = next((t for t, a in found.items() if a.table == archive.table and t != live), None)
            if "." not in live:
                problems.append(f"{where}: {live} is a lookup: only a raw table (schema.table) has an archive")
            elif archive.table == live:
                problems.append(f"{where}: {live} cannot be its own archive")
            elif first != archive:
                problems.append(
                    f"{where}: {live} is archived in {archive.table} on ({', '.join(archive.key)}), but "
                    f"{first.file} declares {first.table} on ({', '.join(first.key)}); declare one archive per table"
                )
            elif owner:
                problems.append(f"{where}: {archive.table} is already the archive of {owner} ({found[owner].file})")
    return found
