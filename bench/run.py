"""Benchmark the pipeline on simulated sites against the floor and a plain DuckDB pipeline.

    python bench/run.py --size small|medium|large|xl

Not part of the test suite. The site is simulated once into bench/data/<size>/. The engine, the floor
and the DuckDB baseline (bench/baselines.py) each run in their own child process, so each peak RSS is
its own. Results go to bench/results/<date>-<size>.json; `--markdown` prints the table for
docs/performance.md.
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
# stages both pipelines have: label -> (the engine's stage, the DuckDB baseline's stages)
SHARED = {
    "spans": ("spans", ["spans"]),
    "hierarchy": ("hierarchy", ["hierarchy"]),
    "sweep + daily": ("sweep", ["sweep", "daily"]),
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--markdown", action="store_true", help="Also print the docs/performance.md table row.")
    args = ap.parse_args()
    import polars as pl

    from bench.baselines import compare_daily

    raw = site(args.size)
    out = ROOT / "bench" / "data" / f"{args.size}-out"
    engine = run_engine(raw, out)
    manifest, window = engine["manifest"], (engine["manifest"]["window"]["start"], engine["manifest"]["window"]["end"])
    low = run_baseline("floor", raw, window)
    duck = run_baseline("duckdb_pipeline", raw, window)
    rows = sum(manifest["tables"].values())
    stages = manifest["timings"]

    print(f"\n{args.size}: {rows:,} raw rows; window {window[0]} → {window[1]}")
    print(f"{'':<22} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for stage, t in stages.items():
        print(f"engine {stage:<15} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f} {t['peak_rss_mb']:>12,.0f}")
    for label, r in (("floor", low), ("duckdb", duck)):
        for stage, t in r["stages"].items():
            print(f"{label + ' ' + stage:<22} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f}")
    print(f"{'engine end to end':<22} {engine['seconds']:>8.2f} {'':>8} {engine['peak_rss_mb']:>12,.0f}")
    print(f"{'floor end to end':<22} {low['seconds']:>8.2f} {'':>8} {low['peak_rss_mb']:>12,.0f}")
    print(f"{'duckdb end to end':<22} {duck['seconds']:>8.2f} {'':>8} {duck['peak_rss_mb']:>12,.0f}")
    shared = {
        label: {"engine": stages[mine]["seconds"], "duckdb": sum(duck["stages"][s]["seconds"] for s in theirs)}
        for label, (mine, theirs) in SHARED.items()
    }
    for label, s in shared.items():
        s["ratio"] = s["engine"] / s["duckdb"]
        print(f"engine/duckdb {label:<14} {s['engine']:>7.2f} / {s['duckdb']:>6.2f} s = {s['ratio']:.2f}")
    ratios = {"engine/floor": engine["seconds"] / low["seconds"], "engine/duckdb": engine["seconds"] / duck["seconds"]}
    print(", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + f"; {rows / engine['seconds']:,.0f} rows/s")
    agreement = compare_daily(pl.read_parquet(out / "daily.parquet"), duck["daily"])
    for metric, c in agreement.items():
        print(
            f"node-hours {metric:<22} engine {c['engine']:>14,.1f} duckdb {c['duckdb']:>14,.1f} "
            f"({c['relative_difference']:+.3%})"
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
        "shared_stages": shared,
        "ratios": ratios,
        "node_hours_agreement": agreement,
    }
    target = ROOT / "bench" / "results" / f"{date.today()}-{args.size}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"→ {target.relative_to(ROOT)}")
    if args.markdown:
        print(markdown_row(result))


def markdown_row(r: dict) -> str:
    """| size | raw rows | engine s | peak GB | floor s | duckdb s | engine/floor | engine/duckdb | per-stage ratios |"""
    shared = ", ".join(f"{k} {v['ratio']:.2f}" for k, v in r["shared_stages"].items())
    return (
        f"| {r['size']} | {r['raw_rows']:,} | {r['engine']['seconds']:.1f} | {r['engine']['peak_rss_mb'] / 1024:.1f} | "
        f"{r['floor']['seconds']:.1f} | {r['duckdb']['seconds']:.1f} | {r['ratios']['engine/floor']:.1f} | "
        f"{r['ratios']['engine/duckdb']:.2f} | {shared} |"
    )


if __name__ == "__main__":
    main()
