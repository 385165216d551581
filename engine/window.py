"""The run's window: --start and --end (clock times of the run's time zone, held as UTC), else the data's
own, from its first counted start to its last recorded change in whole local days. A window without a
counted hour is refused before anything is written."""

import dataclasses
from datetime import datetime

import polars as pl

from engine.accounts import by_reason
from engine.errors import EngineError
from engine.hierarchy import COUNTED
from engine.temporal import EARLIEST, LATEST, day_start, hours_in, local_time, utc_time, zone_error

FLAGS = (("--start", "start"), ("--end", "end"), ("--as-of", "as_of"))  # the config's times, by their flags


def data_window(cfg, results, *, notes: list[str]) -> tuple[datetime, datetime]:
    """--start/--end, else from the data: first counted start to the last recorded change, whole days of the zone;
    refused when no counted span has an hour in it (nothing replaces a previous output then). An --end after the
    data's last change is kept, with a note: what is open then is counted to the end, as if nothing changed."""
    counted = [r.validated.filter(pl.col("hierarchy_status").is_in(COUNTED)) for r in results]
    first = _bounded(df["valid_start"] for df in counted)
    last = _bounded((r.spans.accepted[c] for r in results for c in ("tx_start", "tx_end")), latest=True)
    if cfg.as_of is not None:  # projected: show the future as booked at as_of too
        ends = _bounded((df["valid_end"] for df in counted), latest=True)
        last = max([cfg.as_of, *(t for t in (ends, last) if t is not None)])
    start = cfg.start or (day_start(first, cfg.timezone) if first else None)
    end = cfg.end or (day_start(last, cfg.timezone, days=1) if last else None)
    if start is None or end is None:
        raise EngineError(f"no counted spans to derive a window from{_rejected(results)}; give --start and --end")
    if cfg.end and cfg.as_of is None and last and cfg.end > day_start(last, cfg.timezone, days=1):
        notes.append(_past_data(cfg.end, last, cfg.timezone))
    if end <= start:
        raise EngineError(f"window end {end} is not after its start {start}; give --start and --end")
    _refuse_empty(results, counted, window=(start, end), first=first, tz=cfg.timezone)
    return start, end


def window_record(window: tuple[datetime, datetime], tz: str) -> dict:
    """The window in UTC, and on the clocks of the run's time zone when that is not UTC."""
    record = {"start": window[0], "end": window[1]}
    if tz != "UTC":
        local = (local_time(t, tz) for t in window)
        record |= dict(zip(("local_start", "local_end"), local, strict=True))
    return record


def in_utc(cfg):
    """The run's config with its --start, --end and --as-of (clock times of its time zone) as UTC times;
    a time outside the documented bounds, a skipped clock time or an end not after the start is refused."""
    if cfg.start and cfg.end and cfg.end <= cfg.start:
        raise EngineError(f"--end {cfg.end:%Y-%m-%d} is not after --start {cfg.start:%Y-%m-%d}")
    for flag, value in ((flag, getattr(cfg, name)) for flag, name in FLAGS):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise EngineError(
                f"{flag} {value.date().isoformat()}: outside the times the engine reads, {EARLIEST:%Y} to {LATEST:%Y}"
            )
    if problem := zone_error(cfg.timezone):
        raise EngineError(f"--timezone {problem}")
    times = {}
    for flag, name in FLAGS:
        value = getattr(cfg, name)
        if value is not None:
            times[name] = utc_time(value, cfg.timezone)
            if local_time(times[name], cfg.timezone) != value:
                raise EngineError(f"{flag} {value}: the clocks of {cfg.timezone} skip this time; give another")
    return dataclasses.replace(cfg, **times)


def _refuse_empty(results, counted: list[pl.DataFrame], *, window, first: datetime | None, tz: str) -> None:
    """A window with no counted span is no result; the error says why (`first`: the first counted start), in
    the clock times of the run's zone, as --start and --end were typed."""
    if any(df.select(hours_in(window).sum()).item() > 0 for df in counted if df.height):
        return
    start, end, first = (t and local_time(t, tz) for t in (*window, first))
    why = f"the data's counted spans start {first:%Y-%m-%d}" if first else "no span counts at all" + _rejected(results)
    raise EngineError(f"no counted span in the window {start:%Y-%m-%d} to {end:%Y-%m-%d} ({why})")


def _past_data(end: datetime, last: datetime, tz: str) -> str:
    """The warning of an --end after the data: the hours after its last change are a projection."""
    end, last = (f"{local_time(t, tz):%Y-%m-%d %H:%M}" for t in (end, last))
    return (
        f"--end {end} is after the data's last recorded change, {last}: what was open then is counted to the "
        "window end, as if nothing changed after it"
    )


def _rejected(results) -> str:
    """'; rejected: entity {reason: rows}, …': why no span counts, when rows were rejected."""
    rejected = [f"{r.spec.name} {by_reason(r.spans.rejected)}" for r in results if r.spans.rejected.height]
    return f"; rejected: {', '.join(rejected)}" if rejected else ""


def _bounded(columns, latest: bool = False) -> datetime | None:
    """The earliest (or latest) time of the columns inside the documented bounds (EARLIEST, LATEST): a time
    outside them never stretches the default window (a host enrolled in 1901 is clipped by it), and never
    reaches Python (whose datetime cannot hold year -64)."""
    inside = [c.filter(c.is_between(EARLIEST, LATEST)) for c in columns]
    found = [c.max() if latest else c.min() for c in inside if c.len()]
    return (max if latest else min)((t for t in found if t is not None), default=None)
