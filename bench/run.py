"""Benchmark the pipeline on simulated sites against the floor and two plain DuckDB pipelines.

    python bench/run.py --size small|medium|large|xl

Not part of the test suite. The site is simulated once into bench/data/<size>/. The engine, the floor,
the cheap DuckDB pipeline and the full one (bench/baselines.py: duckdb_pipeline, duckdb_full) each run
in their own child process, so each peak RSS is its own. The headline ratio is engine / duckdb_full:
the two do the same work. Results go to bench/results/<date>-<size>.json; `--markdown` prints the
table row for docs/performance.md.
"""

import argparse
import json
import multiprocessing
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = {"small": (50, 90), "medium": (500, 365), "large": (2000, 3650), "xl": (4000, 3650)}
# stages both pipelines have: label -> (the engine's stages, the DuckDB baseline's stages). The engine's
# lookups are a stage of their own; DuckDB builds them inside its spans stage.
SHARED = {
    "spans": (["lookups", "spans"], ["spans"]),
    "hierarchy": (["hierarchy"], ["hierarchy"]),
    "sweep + daily": (["sweep"], ["sweep", "daily"]),
}
SHARED_FULL = {
    **SHARED,
    "checkpoints": (["checkpoints"], ["checkpoints"]),
    "breakdowns": (["breakdowns"], ["breakdowns"]),
}


def site(size: str) -> Path:
    """The simulated raw directory for a size, generated on first use."""
    from simulator.chameleon import simulate

    raw = ROOT / "bench" / "data" / size
    if not (raw / "simulation" / "simulation.json").is_file():
        hosts, days = SIZES[size]
        began = time.perf_counter()
        simulate(raw, seed=0, hosts=hosts, days=days)
        print(f"simulated {size}: {hosts} hosts x {days} days in {time.perf_counter() - began:.1f} s")
    return raw


def run_engine(raw: Path, out: Path) -> dict:
    """Manifest, wall seconds and peak RSS of `engine run` in a child process.

    The simulated site is bare metal: it runs as a site with the entities of the bare-metal demo site in
    etc/sites.yaml, as an operator's sites file would list them (no KVM or edge entities over its tables).
    """
    import yaml

    demo = yaml.safe_load((ROOT / "etc" / "sites.yaml").read_text())["sites"]["demo"]
    sites = raw.parent / f"{raw.name}-sites.yaml"
    sites.write_text(
        yaml.safe_dump(
            {"sites": {raw.name: {"name": f"bench {raw.name}", "data": raw.name, "entities": demo["entities"]}}}
        )
    )
    began = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "engine",
        "run",
        str(ROOT / "specs"),
        "--sites",
        str(sites),
        "--site",
        raw.name,
        "--out",
        str(out),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"engine run failed:\n{done.stderr}")
    wall = time.perf_counter() - began
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"manifest": json.loads(done.stdout), "seconds": wall, "peak_rss_mb": rss}


def _baseline(name: str, raw: Path, window, queue) -> None:
    import bench.baselines as b

    result = getattr(b, name)(raw, window)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def run_baseline(name: str, raw: Path, window) -> dict:
    """A baseline of bench/baselines.py in a fresh process: its result with wall seconds and peak RSS."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    began = time.perf_counter()
    child = ctx.Process(target=_baseline, args=(name, raw, window, queue))
    child.start()
    result = queue.get()
    child.join()
    result["seconds"] = time.perf_counter() - began
    return result


def shared_stages(stages: dict, baseline: dict, shared: dict) -> dict:
    """{label: {"engine", "duckdb": seconds of the stages both have, "ratio"}} (an absent stage counts 0)."""
    out = {}
    for label, (mine, theirs) in shared.items():
        s = {
            "engine": sum(stages.get(m, {}).get("seconds", 0.0) for m in mine),
            "duckdb": sum(baseline["stages"].get(t, {}).get("seconds", 0.0) for t in theirs),
        }
        s["ratio"] = s["engine"] / s["duckdb"] if s["duckdb"] else float("nan")
        out[label] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--markdown", action="store_true", help="Also print the docs/performance.md table row.")
    args = ap.parse_args()
    import polars as pl

    from bench.baselines import compare_daily, compare_outputs

    raw = site(args.size)
    out = ROOT / "bench" / "data" / f"{args.size}-out"
    engine = run_engine(raw, out)
    manifest, window = engine["manifest"], (engine["manifest"]["window"]["start"], engine["manifest"]["window"]["end"])
    low = run_baseline("floor", raw, window)
    duck = run_baseline("duckdb_pipeline", raw, window)
    full = run_baseline("duckdb_full", raw, window)
    rows = sum(manifest["tables"].values())
    stages = manifest["timings"]

    print(f"\n{args.size}: {rows:,} raw rows; window {window[0]} → {window[1]}")
    print(f"{'':<26} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for stage, t in stages.items():
        print(f"engine {stage:<19} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f} {t['peak_rss_mb']:>12,.0f}")
    for label, r in (("floor", low), ("duckdb", duck), ("duckdb_full", full)):
        for stage, t in r["stages"].items():
            print(f"{label + ' ' + stage:<26} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f}")
    for label, r in (("engine", engine), ("floor", low), ("duckdb", duck), ("duckdb_full", full)):
        print(f"{label + ' end to end':<26} {r['seconds']:>8.2f} {'':>8} {r['peak_rss_mb']:>12,.0f}")
    shared = shared_stages(stages, duck, SHARED)
    shared_full = shared_stages(stages, full, SHARED_FULL)
    for name, table in (("duckdb", shared), ("duckdb_full", shared_full)):
        for label, s in table.items():
            print(f"engine/{name + ' ' + label:<24} {s['engine']:>7.2f} / {s['duckdb']:>6.2f} s = {s['ratio']:.2f}")
    ratios = {
        "engine/duckdb_full": engine["seconds"] / full["seconds"],
        "engine/duckdb": engine["seconds"] / duck["seconds"],
        "engine/floor": engine["seconds"] / low["seconds"],
    }
    print(", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + f"; {rows / engine['seconds']:,.0f} rows/s")
    engine_daily = pl.read_parquet(out / "daily.parquet")
    agreement = compare_daily(engine_daily, duck["daily"])
    agreement_full = compare_daily(engine_daily, full["daily"])
    for name, table in (("duckdb", agreement), ("duckdb_full", agreement_full)):
        for metric, c in table.items():
            print(
                f"node-hours {metric:<22} engine {c['engine']:>14,.1f} {name:>11} {c['duckdb']:>14,.1f} "
                f"({c['relative_difference']:+.4%}; largest cell {c['max_cell_difference']:,.2g})"
            )
    outputs = compare_outputs(out, Path(full["out"]))
    for name, c in outputs.items():
        print(
            f"{name:<36} engine {c['engine']:>14,.1f} duckdb_full {c['duckdb_full']:>14,.1f} "
            f"(largest cell {c['max_cell_difference']:,.2g})"
        )

    result = {
        "size": args.size,
        "hosts_days": SIZES[args.size],
        "raw_rows": rows,
        "tables": manifest["tables"],
        "machine": {
            "cpus": multiprocessing.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "platform": platform.platform(),
        },
        "engine": {"seconds": engine["seconds"], "peak_rss_mb": engine["peak_rss_mb"], "stages": stages},
        "floor": {k: low[k] for k in ("seconds", "peak_rss_mb", "stages", "rows", "events")},
        "duckdb": {k: duck[k] for k in ("seconds", "peak_rss_mb", "stages")},
        "duckdb_full": {k: full[k] for k in ("seconds", "peak_rss_mb", "stages", "rows")},
        "shared_stages": shared,
        "shared_stages_full": shared_full,
        "ratios": ratios,
        "node_hours_agreement": agreement,
        "node_hours_agreement_full": agreement_full,
        "outputs_agreement_full": outputs,
    }
    target = ROOT / "bench" / "results" / f"{date.today()}-{args.size}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"→ {target.relative_to(ROOT)}")
    if args.markdown:
        print(MARKDOWN_HEADER)
        print(markdown_row(result))


MARKDOWN_HEADER = (
    "| size | raw rows | engine s | engine peak GB | floor s | DuckDB s | DuckDB full s | DuckDB full peak GB "
    "| engine/floor | engine/DuckDB | engine/DuckDB full | engine/DuckDB full per shared stage |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def markdown_row(r: dict) -> str:
    """A row of MARKDOWN_HEADER: the headline ratio is engine/DuckDB full, the cheap DuckDB row is kept beside."""
    shared = ", ".join(f"{k} {v['ratio']:.2f}" for k, v in r["shared_stages_full"].items())
    full = r["duckdb_full"]
    return (
        f"| {r['size']} | {r['raw_rows']:,} | {r['engine']['seconds']:.1f} | {r['engine']['peak_rss_mb'] / 1024:.1f} | "
        f"{r['floor']['seconds']:.1f} | {r['duckdb']['seconds']:.1f} | {full['seconds']:.1f} | "
        f"{full['peak_rss_mb'] / 1024:.1f} | {r['ratios']['engine/floor']:.1f} | {r['ratios']['engine/duckdb']:.2f} | "
        f"{r['ratios']['engine/duckdb_full']:.2f} | {shared} |"
    )


if __name__ == "__main__":
    main()
