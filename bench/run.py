"""Benchmark the pipeline on simulated sites: wall time, CPU time and peak memory per stage.

    python bench/run.py --size small|medium|large|xl

Not part of the test suite. The site is simulated once into bench/data/<size>/; the engine runs in a
child process (so its peak RSS is its own); results go to bench/results/<date>-<size>.json.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": (50, 90), "medium": (500, 365), "large": (2000, 3650), "xl": (4000, 3650)}


def site(size: str) -> Path:
    """The simulated raw directory for a size, generated on first use."""
    from engine.simulate import simulate

    raw = ROOT / "bench" / "data" / size
    if not (raw / "simulation" / "simulation.json").is_file():
        hosts, days = SIZES[size]
        began = time.perf_counter()
        simulate(raw, seed=0, hosts=hosts, days=days)
        print(f"simulated {size}: {hosts} hosts x {days} days in {time.perf_counter() - began:.1f} s")
    return raw


def run_engine(raw: Path, out: Path) -> tuple[dict, float, float]:
    """(manifest, wall seconds, peak RSS MB) of `engine run` in a child process."""
    began = time.perf_counter()
    cmd = [sys.executable, "-m", "engine", "run", str(ROOT / "specs"), "--data", str(raw), "--out", str(out), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"engine run failed:\n{done.stderr}")
    wall = time.perf_counter() - began
    return json.loads(done.stdout), wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def sweep_scaling(out: Path, manifest: dict) -> dict:
    """Seconds of the sweep stage on half and on all of the counted spans: O(n log n) means ratio <= 2.2."""
    from datetime import datetime

    from engine.spec.load import load_specs
    from engine.usage import usage_stage

    specs = load_specs(ROOT / "specs")
    window = tuple(datetime.fromisoformat(manifest["window"][k]) for k in ("start", "end"))
    frames = [
        (pl.read_parquet(out / "validated" / f"{name}.parquet"), list(spec["resources"]))
        for name, spec in specs.entities.items()
        if (out / "validated" / f"{name}.parquet").is_file()
    ]
    seconds = {}
    for label, keep in (("half", 2), ("all", 1)):
        part = [(df.filter(pl.col("entity_id").hash(7) % keep == 0), res) for df, res in frames]
        began = time.perf_counter()
        usage_stage(part, specs.metrics["metrics"], ["site", *specs.metrics.get("group_by", [])], window, ["1d"])
        seconds[label] = time.perf_counter() - began
    return {**seconds, "ratio": seconds["all"] / seconds["half"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    args = ap.parse_args()
    raw = site(args.size)
    out = ROOT / "bench" / "data" / f"{args.size}-out"
    manifest, wall, rss = run_engine(raw, out)
    rows = sum(manifest["tables"].values())
    print(
        f"\n{args.size}: {rows:,} raw rows, end to end {wall:.1f} s, peak RSS {rss:,.0f} MB, {rows / wall:,.0f} rows/s"
    )
    print(f"{'stage':<12} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for stage, t in manifest["timings"].items():
        print(f"{stage:<12} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f} {t['peak_rss_mb']:>12,.0f}")
    scaling = sweep_scaling(out, manifest)
    print(f"sweep on half / all spans: {scaling['half']:.2f} s / {scaling['all']:.2f} s, ratio {scaling['ratio']:.2f}")
    result = {"size": args.size, "sites": SIZES[args.size], "raw_rows": rows, "tables": manifest["tables"],
              "wall_seconds": wall, "peak_rss_mb": rss, "stages": manifest["timings"], "sweep_scaling": scaling}  # fmt: skip
    target = ROOT / "bench" / "results" / f"{date.today()}-{args.size}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"→ {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
