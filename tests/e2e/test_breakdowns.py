"""Who used it: hours per project and per user, and service units, against the simulator's brute-force truth
(truth_by_user.parquet: each intended lease and instance spread over its days with numpy, by its user)."""

import json

import polars as pl
import pytest

from engine.spec.load import load_specs
from simulator.chameleon import GPU_SU, simulate
from tests.conftest import SPECS, run_cli

HELD = ["committed", "occupied_reservation", "occupied_ondemand"]
# the SUs per node-hour: GPU hosts record su_factor in Blazar (the data wins over the specs' 2.0 for the type),
# storage_nvme takes the specs' fallback, every other type the default
FACTOR = {"gpu_rtx_6000": float(GPU_SU), "storage_nvme": 1.5}


def run_site(base, kind: str, *extra: str):
    simulate(base / "raw", seed=7, hosts=30, days=45, kind=kind)
    out = base / "out"
    result = run_cli("run", SPECS, "--data", base / "raw", "--out", out, "--no-report", *extra)
    assert result.exit_code == 0, result.stderr
    return out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module", params=["baremetal", "kvm", "edge"])
def site(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    out, manifest = run_site(base, request.param, "--start", "2024-01-01", "--end", "2024-02-15")
    truth = pl.read_parquet(base / "raw" / "simulation" / "truth_by_user.parquet")
    return out, manifest, truth.with_columns(pl.col("date").cast(pl.Date))


def same(ours: pl.DataFrame, truth: pl.DataFrame, keys: list[str]) -> float:
    """The largest difference of `hours` between two tables on these keys (a cell missing on one side is 0)."""
    both = ours.join(truth, on=keys, how="full", coalesce=True, suffix="_truth").fill_null(0.0)
    assert truth["hours"].sum() > 0 and both.height >= truth.height
    return both.select((pl.col("hours") - pl.col("hours_truth")).abs().max()).item()


@pytest.mark.parametrize("who", ["project_id", "user_id"])
def test_hours_per_project_and_user_equal_the_brute_force_truth(site, who):
    out, _, truth = site
    name = who.removesuffix("_id")
    ours = pl.read_parquet(out / f"daily_by_{name}.parquet").filter(pl.col("resource") == "nodes")
    held = [m for m in HELD if m in ours["metric"].unique()]
    keys = ["date", "node_type", "metric", who]
    expected = truth.filter(pl.col("metric").is_in(held)).group_by(keys).agg(pl.col("hours").sum())
    assert same(ours.filter(pl.col("metric").is_in(held)).select(*keys, "hours"), expected, keys) < 1e-6


def test_idle_per_project_is_its_leases_less_its_instances(site):
    out, _, truth = site
    ours = pl.read_parquet(out / "daily_by_project.parquet").filter(pl.col("resource") == "nodes")
    keys = ["date", "node_type", "project_id"]
    signed = truth.filter(pl.col("metric").is_in(["committed", "occupied_reservation"])).with_columns(
        pl.when(pl.col("metric") == "committed").then(pl.col("hours")).otherwise(-pl.col("hours"))
    )
    idle = signed.group_by(keys).agg(pl.col("hours").sum())
    assert same(ours.filter(pl.col("metric") == "idle").select(*keys, "hours"), idle, keys) < 1e-6


def test_a_breakdown_sums_to_daily_and_says_which_metrics_it_splits(site):
    out, manifest, _ = site
    daily = pl.read_parquet(out / "daily.parquet")
    keys = ["date", "site", "metric", "resource", "node_type"]
    for name in ("project", "user"):
        split = pl.read_parquet(out / f"daily_by_{name}.parquet")
        metrics = sorted(split["metric"].unique())
        assert manifest["breakdowns"][name]["metrics"] == metrics
        assert "total" not in metrics and "reservable" not in metrics  # hosts belong to no project
        summed = split.group_by(keys).agg(pl.col("hours").sum())
        resources = load_specs(SPECS).metrics.breakdowns[name].resources
        assert set(split["resource"].unique()) <= set(resources) == {"nodes", "vcpus"}  # edge devices have no vCPUs
        whole = daily.filter(pl.col("metric").is_in(metrics), pl.col("resource").is_in(resources))
        whole = whole.select(*keys, "hours")
        assert same(summed, whole, keys) < 1e-6
    checks = [i for i in manifest["invariants"] if i["id"] in ("INV-14", "INV-15")]
    assert [i["id"] for i in checks] == ["INV-14", "INV-14", "INV-15"] and {i["status"] for i in checks} == {"pass"}


def test_service_units_are_committed_hours_times_the_host_factor(site):
    out, manifest, truth = site
    charges = pl.read_parquet(out / "charges.parquet")
    keys = ["date", "node_type", "project_id"]
    factor = pl.col("node_type").replace_strict(FACTOR, default=1.0, return_dtype=pl.Float64)
    expected = truth.filter(pl.col("metric") == "committed").with_columns(pl.col("hours") * factor)
    expected = expected.group_by(keys).agg(pl.col("hours").sum())
    assert same(charges.select(*keys, pl.col("su").alias("hours")), expected, keys) < 1e-6
    assert charges["encumbered_su"].sum() == 0  # an effective run: nothing is booked ahead
    assert manifest["charges"]["su"] == pytest.approx(expected["hours"].sum(), rel=1e-9)


def test_a_projected_run_splits_consumed_from_encumbered_units(tmp_path):
    as_of = "2024-01-20T12:00:00"
    out, manifest = run_site(tmp_path, "baremetal", "--lens", "projected", "--as-of", as_of)
    charges = pl.read_parquet(out / "charges.parquet")
    day = pl.lit(as_of).str.to_datetime().dt.date()
    assert charges.filter(pl.col("date") > day)["su"].sum() == 0
    assert charges.filter(pl.col("date") < day)["encumbered_su"].sum() == 0
    assert charges.filter(pl.col("date") >= day)["encumbered_su"].sum() > 0
    # SUs consumed and encumbered, summed over projects: the projected committed hours x factor
    committed = pl.read_parquet(out / "daily.parquet").filter(
        pl.col("metric") == "committed", pl.col("resource") == "nodes"
    )
    factor = pl.col("node_type").replace_strict(FACTOR, default=1.0, return_dtype=pl.Float64)
    expected = committed.group_by("date", "node_type").agg((pl.col("hours") * factor).sum())
    ours = charges.group_by("date", "node_type").agg((pl.col("su") + pl.col("encumbered_su")).sum().alias("hours"))
    assert same(ours, expected, ["date", "node_type"]) < 1e-6
    assert manifest["charges"]["encumbered_su"] > 0


def test_why_takes_a_project_cell_apart(site):
    out, _, truth = site
    split = pl.read_parquet(out / "daily_by_project.parquet").filter(pl.col("resource") == "nodes")
    cell = split.filter(pl.col("metric") == "committed").sort("hours", descending=True).row(0, named=True)
    args = ["why", out, "--metric", "committed", "--date", str(cell["date"]), "--json"]
    where = ["--where", f"project_id={cell['project_id']}", "--where", f"node_type={cell['node_type']}"]
    answer = json.loads(run_cli(*args, *where).stdout)
    assert answer["matches"] and answer["table"] == "daily_by_project.parquet"
    assert answer["daily"] == pytest.approx(cell["hours"]) and answer["total"] == pytest.approx(cell["hours"])
    keys = {k: cell[k] for k in ("date", "project_id", "node_type")}
    expected = truth.filter(metric="committed", **keys)["hours"].sum()
    assert answer["total"] == pytest.approx(expected, abs=1e-6)  # the brute force agrees
    refused = run_cli(*args, "--where", f"project_id={cell['project_id']}", "--metric", "total")
    assert refused.exit_code == 1 and "total in nodes is not split by project in this run" in refused.stderr
    both = run_cli(*args, "--where", f"project_id={cell['project_id']}", "--where", "user_id=u")
    assert both.exit_code == 1
    assert (
        "no breakdown splits by project_id and user_id together (breakdowns: project: project_id; user: user_id)"
        in (both.stderr)
    )
    unknown = run_cli(*args, "--resource", "vcpu")  # a typo must not read as "0 spans, matches"
    assert unknown.exit_code == 1 and "--resource: 'vcpu' is not in daily.parquet" in unknown.stderr


def test_fallback_factors_written_as_integers_are_the_same_factors(tmp_path, specs_copy):
    """YAML reads `2` as an integer: {gpu_rtx_6000: 2, storage_nvme: 1.5} was a Polars traceback in the charges
    stage (an Int64 series meeting 1.5), after all the work; `engine validate` called it valid."""
    from tests.rawdata import tiny_site, write_raw

    raw = write_raw(tmp_path / "raw", tiny_site())
    args = ("--data", raw, "--out", tmp_path / "out", "--start", "2024-01-01", "--end", "2024-01-31", "--no-report")
    charges = []
    for factor in ("2.0", "2"):
        metrics = specs_copy / "metrics.yaml"
        metrics.write_text(metrics.read_text().replace("{gpu_rtx_6000: 2.0,", f"{{gpu_rtx_6000: {factor},"))
        result = run_cli("run", specs_copy, *args)
        assert result.exit_code == 0, result.stderr
        charges.append(pl.read_parquet(tmp_path / "out" / "charges.parquet"))
    assert charges[1].equals(charges[0]) and charges[0]["su"].sum() > 0
