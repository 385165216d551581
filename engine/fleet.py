"""Several sites at once: sites share nothing, so each runs in its own worker process.

A site's failure is reported and does not stop the others. Workers are spawned (never forked: Polars'
thread pools do not survive a fork) and each gets an equal share of the cores for its Polars threads.
The same partition by site is what a distributed engine would schedule (docs/performance.md).
"""

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from engine.errors import EngineError


@dataclass
class SiteOutcome:
    site: str
    manifest: dict | None = None
    error: str | None = None  # one line: the EngineError (or OSError) that stopped the site


def exit_on_sigterm() -> None:
    """SIGTERM (`kill`, a scheduler's stop) as an exit, so a run's temporary outputs are removed as on Ctrl-C
    (only the main thread may set a handler: the command called from another thread keeps the default)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _worker_start() -> None:
    """Ctrl-C reaches every process of the terminal; a worker leaves it to the parent, which stops the workers
    with SIGTERM: one message, no traceback per worker, and each worker's outputs removed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_on_sigterm()


def _hold_ctrl_c(hold: bool = True) -> None:
    """Block SIGINT in this thread (it waits, pending, instead of being lost), or let it through again. A
    process spawned meanwhile inherits the mask across exec, so a worker never sees a Ctrl-C while it still
    imports the engine (the parent stops it with SIGTERM)."""
    signal.pthread_sigmask(signal.SIG_BLOCK if hold else signal.SIG_UNBLOCK, {signal.SIGINT})


def _in_worker(cfg) -> SiteOutcome:
    """run_one in a worker: SIGTERM ends the process once the run has removed its outputs (the pool would
    otherwise take the exit as the task's result and wait for the next task)."""
    try:
        return run_one(cfg)
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)


def run_one(cfg, progress=None) -> SiteOutcome:
    """Run one site; a user-caused error becomes the outcome's one-line error, a bug propagates.
    `progress(stage, item)` hears each stage, prefixed with the site."""
    from engine.pipeline import Progress, run

    hooks = [Progress(progress, f"site {cfg.site} · ")] if progress else []
    try:
        return SiteOutcome(cfg.site, manifest=run(cfg, hooks))
    except EngineError as exc:
        return SiteOutcome(cfg.site, error=str(exc).replace("\n", "; "))
    except OSError as exc:
        return SiteOutcome(cfg.site, error=f"{exc.filename or ''}: {exc.strerror or exc}")


def run_sites(configs: list, jobs: int, *, on_done=lambda outcome, n, total: None, progress=None) -> list[SiteOutcome]:
    """Outcomes in the order of `configs`; at most `jobs` sites run at once.

    `progress(stage, item)` reports each stage as it starts (prefixed with the site), when the sites run one
    after the other in this process; in parallel only `on_done` reports.
    """
    jobs = max(1, min(jobs, len(configs)))
    if jobs == 1:
        outcomes = []
        for i, cfg in enumerate(configs):
            outcomes.append(run_one(cfg, progress))
            on_done(outcomes[-1], n=i + 1, total=len(configs))
        return outcomes
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    saved = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = threads  # read by each worker's Polars at import
    try:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_worker_start) as pool:
            try:
                _hold_ctrl_c()  # while the workers are spawned: a Ctrl-C meanwhile arrives right after
                try:
                    futures = {pool.submit(_in_worker, cfg): i for i, cfg in enumerate(configs)}
                finally:
                    _hold_ctrl_c(False)
                outcomes: list = [None] * len(configs)
                for done, future in enumerate(as_completed(futures), 1):
                    outcomes[futures[future]] = future.result()
                    on_done(outcomes[futures[future]], n=done, total=len(configs))
            except BaseException:  # Ctrl-C, SIGTERM or a bug: the workers stop too, cleaning up
                _hold_ctrl_c()  # a second Ctrl-C would be a traceback from the pool's exit, not a faster stop
                pool.shutdown(wait=False, cancel_futures=True)
                for worker in multiprocessing.active_children():
                    worker.terminate()
                raise
    finally:
        if saved is None:
            os.environ.pop("POLARS_MAX_THREADS", None)
        else:
            os.environ["POLARS_MAX_THREADS"] = saved
    return outcomes
