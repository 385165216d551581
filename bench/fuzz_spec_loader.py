"""Fuzz the spec loader: mutated spec files must end in a loaded spec set or a SpecError/EngineError whose
problems are one line each, never another exception.

    python bench/fuzz_spec_loader.py --seconds 300            # atheris (coverage-guided) when installed
    python bench/fuzz_spec_loader.py --seconds 300 --random   # plain random mutations, no extra package

Each input replaces one file of a copy of specs/: half the time a structured mutation of its YAML tree
(a key deleted, a value of another type, an expression fragment, an unknown field, a tag), half the time
raw bytes spliced into its text. Findings (distinct by exception type and place) are kept with the input
that caused them in bench/results/fuzz/; a summary is printed and written as JSON. Not collected by pytest.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALARS = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    float("nan"),
    "",
    " ",
    "x",
    "nova.instances",
    "../../etc/passwd",
    "a.b.c",
    "'",
    '"',
    "\n",
    "\x00",
    "é",
    "🙂" * 3,
    "1e309",
    "-" * 300,
    "entity",
    "table",
    "$",
    "$['a'",
    "*",
]
EXPRESSIONS = [
    "created_at",
    "l.end_date",
    "least(a, b)",
    "coalesce(x, 'y')",
    "CAST(x AS DECIMAL(100, 2))",
    "x = ",
    "1 +",
    "CASE WHEN",
    "eval('1')",
    "__import__('os')",
    "zz.qq",
    "a.b.c",
    "'unterminated",
    "x IN (SELECT 1)",
    "sum(x) OVER ()",
    "date_part('foo', x)",
    "1/0",
    "NULL",
    "x::int",
    "json_extract(x, '$')",
    "x LIKE",
    "(",
    ")",
    "a -> 'b'",
]
KEYS = [
    "entity",
    "lookup",
    "report",
    "metrics",
    "source",
    "joins",
    "table",
    "key",
    "as",
    "on",
    "required",
    "optional",
    "asof",
    "history",
    "columns",
    "scope",
    "valid",
    "tx",
    "identity",
    "rules",
    "attributes",
    "parent",
    "inherit",
    "resources",
    "measures",
    "invariants",
    "group_by",
    "aggregate",
    "order_by",
    "formula",
    "stack",
    "legacy",
    "start",
    "end",
    "left",
    "right",
    "json",
    "path",
    "unknown_field",
]


class Input:
    """Choices drawn from the fuzzer's bytes (atheris) or from a seeded generator."""

    def __init__(self, data: bytes | None = None, rng: random.Random | None = None):
        self.rng = rng
        if data is not None:
            import atheris

            self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, n: int) -> int:
        return self.rng.randrange(n) if self.rng else self.fdp.ConsumeIntInRange(0, max(n - 1, 0))

    def pick(self, seq):
        return seq[self.int(len(seq))]

    def bytes(self, n: int) -> bytes:
        return (
            bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(n)))
            if self.rng
            else (self.fdp.ConsumeBytes(self.int(n)))
        )


def paths(node, prefix=()):
    """Every path into a YAML tree, the root included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths(child, (*prefix, key))


def value(inp: Input, depth: int = 0):
    kind = inp.int(6 if depth < 2 else 3)
    if kind == 0:
        return inp.pick(SCALARS)
    if kind == 1:
        return inp.pick(EXPRESSIONS)
    if kind == 2:
        return inp.bytes(12).decode("utf-8", "replace")
    if kind == 3:
        return [value(inp, depth + 1) for _ in range(inp.int(3))]
    if kind == 4:
        return {inp.pick(KEYS): value(inp, depth + 1) for _ in range(inp.int(3))}
    return inp.int(10**6) - 5


def mutate_tree(tree, inp: Input):
    """One to four structural changes to a parsed spec."""
    for _ in range(1 + inp.int(4)):
        target = inp.pick(list(paths(tree)))
        if not target:
            tree = value(inp) if inp.int(8) == 0 else tree
            continue
        parent = tree
        for part in target[:-1]:
            parent = parent[part]
        last, op = target[-1], inp.int(5)
        if op == 0 and isinstance(parent, dict):
            del parent[last]
        elif op == 0 and isinstance(parent, list):
            parent.pop(last)
        elif op == 1 and isinstance(parent, dict):
            parent[inp.pick(KEYS)] = parent[last]
        elif op == 2 and isinstance(parent[last], str):
            parent[last] = parent[last] + inp.pick([" ", "x", ".", " + ", "'"]) + inp.pick(EXPRESSIONS)
        else:
            parent[last] = value(inp)
    return tree


def mutate_text(text: bytes, inp: Input) -> bytes:
    at = inp.int(len(text) + 1)
    cut = inp.int(40)
    extra = (
        inp.bytes(40)
        if inp.int(3)
        else inp.pick(
            [
                b"!!python/object/apply:os.system ['true']",
                b"&a [*a]",
                b"<<: *x",
                b"\t",
                b": :",
                b"- - -",
                b"%YAML 9.9\n",
                b"---\n",
            ]
        )
    )
    return text[:at] + extra + text[at + cut :]


class Fuzzer:
    def __init__(self, out: Path):
        from engine.errors import EngineError, SpecError
        from engine.graph import build_graph
        from engine.spec.load import load_specs

        self.load, self.graph, self.expected, self.spec_error = load_specs, build_graph, EngineError, SpecError
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-specs-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.specs = self.tmp / "specs"
        shutil.copytree(ROOT / "specs", self.specs)
        self.files = sorted(p.relative_to(self.specs) for p in self.specs.rglob("*.yaml"))
        self.originals = {f: (self.specs / f).read_bytes() for f in self.files}
        self.trees = {f: yaml.safe_load(t) for f, t in self.originals.items()}
        self.out, self.runs, self.outcomes, self.findings = out, 0, {"loaded": 0, "rejected": 0}, {}
        self.engine, self.seconds, self.started, self.saved = "random", 180, time.monotonic(), 0.0

    def one(self, inp: Input) -> None:
        name = self.files[inp.int(len(self.files))]
        if inp.int(2):
            tree = mutate_tree(json.loads(json.dumps(self.trees[name], default=str)), inp)
            text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).encode()
        else:
            text = mutate_text(self.originals[name], inp)
        (self.specs / name).write_bytes(text)
        self.runs += 1
        try:
            self.graph(self.load(self.specs))
            self.outcomes["loaded"] += 1
        except self.expected as exc:
            self.outcomes["rejected"] += 1
            lines = exc.problems if isinstance(exc, self.spec_error) else [str(exc)]
            if any("\n" in p for p in lines):
                self.record("multi-line problem", name, text, repr([p for p in lines if "\n" in p][0])[:300])
        except Exception as exc:  # the finding: anything but the engine's own errors
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.record(
                f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}",
                name,
                text,
                str(exc).splitlines()[0][:300] if str(exc) else "",
            )
        finally:
            (self.specs / name).write_bytes(self.originals[name])
        if time.monotonic() - self.saved > 5:
            self.save()
        if time.monotonic() - self.started > self.seconds:  # atheris runs until the process ends: end it here
            self.finish()
            os._exit(0)

    def record(self, kind: str, name: Path, text: bytes, message: str) -> None:
        finding = self.findings.setdefault(kind, {"count": 0, "file": str(name), "message": message})
        finding["count"] += 1
        if finding["count"] == 1:
            self.out.mkdir(parents=True, exist_ok=True)
            slug = "".join(c if c.isalnum() else "_" for c in kind)[:60]
            (self.out / f"{slug}.yaml").write_bytes(text)
            print(f"finding: {kind} in {name}: {message}", flush=True)

    def save(self) -> dict:
        self.saved = time.monotonic()
        result = {
            "engine": self.engine,
            "seconds": round(self.saved - self.started, 1),
            "inputs": self.runs,
            "outcomes": self.outcomes,
            "findings": self.findings,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
        return result

    def finish(self) -> None:
        print(json.dumps(self.save(), indent=1), flush=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--random", action="store_true", help="random mutations instead of atheris")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz")
    args = parser.parse_args()
    try:
        import atheris
    except ImportError:
        atheris = None
    use_atheris = atheris is not None and not args.random
    if use_atheris:
        with atheris.instrument_imports(include=["engine"]):
            import engine.graph  # noqa: F401
            import engine.spec.load  # noqa: F401
    fuzzer = Fuzzer(args.out)
    fuzzer.engine, fuzzer.seconds = ("atheris" if use_atheris else "random"), args.seconds
    if use_atheris:
        flags = [f"-seed={args.seed}", "-max_len=512", "-len_control=0"]
        atheris.Setup([sys.argv[0], *flags], lambda data: fuzzer.one(Input(data=data)))
        atheris.Fuzz()
    rng = random.Random(args.seed)
    while True:
        fuzzer.one(Input(rng=rng))


if __name__ == "__main__":
    main()
