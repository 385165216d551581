"""Manual exclusions (etc/exclusions.yaml): known-bad records an operator takes out, with a reason.

Matching rows are rejected as `excluded` (INV-3 still holds) with the reason in rejection_detail; an
exclusion that matches no row is reported as stale, never silently ignored.
"""

from datetime import datetime

import polars as pl

from engine.errors import EngineError, SpecError
from engine.expr import did_you_mean
from engine.spec.load import read_config


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace(" ", "T"))


def load_exclusions(path, specs, *, site: str, sites=None) -> tuple[pl.DataFrame, list[str]]:
    """One row per excluded key of this site's run: entity, entity_id, valid_from, valid_to, detail, exclusion
    (its index); and warnings. An entry with a `site` applies at that site only (ids repeat across sites:
    two Novas both have a host 1); its site must be one of `sites`, the sites file's keys, when the run has
    one. Without a sites file the run is named by its raw directory, so an entry of another name is said
    in a warning: it may be this very site's, under another directory name."""
    rows, problems, notes = [], [], []
    for i, e in enumerate(read_config(path, "exclusions")["exclusions"]):
        if e["entity"] not in specs.entities:
            problems.append(
                f"{path}: exclusions[{i}].entity: unknown entity '{e['entity']}'{did_you_mean(e['entity'], specs.entities)}"
            )
        at = e.get("site", site)
        if sites is not None and at not in sites:
            known = ", ".join(sites)
            problems.append(
                f"{path}: exclusions[{i}].site: unknown site '{at}'{did_you_mean(at, sites)}; known: {known}"
            )
        if at != site:
            if sites is None:
                notes.append(
                    f"{path}: exclusions[{i}] is for site '{at}', not this run's '{site}' (the raw directory's name): not applied"
                )
            continue
        keys = e["key"] if isinstance(e["key"], list) else [e["key"]]
        detail = f"excluded by {e['added_by']} on {e['added_on']}: {e['reason']}"
        try:
            bounds = _when(e.get("valid_from")), _when(e.get("valid_to")), _when(e["added_on"])
        except ValueError as exc:  # the schema checks the form, not the calendar (2024-13-45)
            problems.append(f"{path}: exclusions[{i}]: not a date: {exc}")
            continue
        if None not in bounds[:2] and bounds[1] <= bounds[0]:
            problems.append(f"{path}: exclusions[{i}]: valid_to {bounds[1]} is not after valid_from {bounds[0]}")
            continue
        rows += [(e["entity"], str(k), *bounds[:2], detail, i) for k in keys]
    if problems:
        raise SpecError(problems)
    schema = {
        "entity": pl.String,
        "entity_id": pl.String,
        "valid_from": pl.Datetime("us"),
        "valid_to": pl.Datetime("us"),
        "detail": pl.String,
        "exclusion": pl.Int64,
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    twice = frame.filter(pl.struct("entity", "entity_id").is_duplicated())
    if twice.height:
        raise EngineError(f"{path}: {twice['entity'][0]} key {twice['entity_id'][0]} is excluded twice; keep one entry")
    return frame, notes


def stale(exclusions: pl.DataFrame, applied: set[int], ran: set[str]) -> list[dict]:
    """Exclusions of entities that ran whose keys matched no row."""
    unused = exclusions.filter(pl.col("entity").is_in(list(ran)) & ~pl.col("exclusion").is_in(list(applied)))
    return (
        unused.group_by("exclusion", maintain_order=True)
        .agg(pl.col("entity").first(), pl.col("entity_id"), pl.col("detail").first())
        .to_dicts()
    )
