"""YAML as the engine reads it (specs, sites, exclusions): a safe loader building JSON's types only, with YAML
1.2 booleans, dates as text, every key given once, and bounded size, nesting and aliases, so a hostile
file ends in one line naming it, never in a traceback or a silent last-value-wins.
"""

import math
import os
import re
import stat
from pathlib import Path

import yaml

from engine.errors import SpecError, escaped

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
                raise YAMLRefused(mark, f"key {printable(source)} is not text")
            if key.value in first:
                raise YAMLRefused(mark, f"duplicate key '{printable(key.value)}' (first at line {first[key.value]})")
            first[key.value] = mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        """Only 64-bit integers: no count, size or seed is longer, Polars holds no more, and Python refuses to
        read more than 4,300 digits at all (a traceback before)."""
        if len(node.value) > 100 or not -(2**63) <= (value := super().construct_yaml_int(node)) < 2**63:
            shown = node.value if len(node.value) <= 30 else f"{node.value[:30]}… ({len(node.value):,} characters)"
            raise YAMLRefused(node.start_mark, f"{printable(shown)} is outside the 64-bit integer range")
        return value

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
SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml_int)


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
        f"{n}: {printable(_unsecret(lines[n - 1].strip()))}" for n in range(max(1, line - 1), min(len(lines), line) + 1)
    )
    raise SpecError([f"{display}:{line}: YAML syntax error near line {line}: {printable(problem)} [{context}]"])


SECRET = re.compile(r"(?i)(://[^/:@\s]*:|(?:password|passwd|pwd|secret|token|api_?key)\s*[=:]\s*)[^\s@\x00]+")


def _unsecret(line: str) -> str:
    """A line shown in an error with what looks like a secret hidden: a URI's password, `password=…`, a token
    (the file may be a wrong one, such as a MySQL option file given as --exclusions)."""
    return SECRET.sub(lambda m: m[1] + "…", line)


def printable(text) -> str:
    """Text for a one-line message: control characters (a newline in a name) escaped, and cut at 200
    characters, so that a 1 MB line in a file is not a 1 MB message."""
    return escaped(str(text), 200)
