"""Sites (etc/sites.yaml): each site's raw data, spec set and databases; `--site` picks some or all.

A site without data is simulated: its `simulate:` names a generator, an installed plugin (an entry point of
the group GENERATORS) that writes a raw directory from the other parameters; it is generated once into the
user's cache.
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from engine.errors import EngineError
from engine.expr import did_you_mean
from engine.io.output import beside
from engine.spec.load import read_config
from engine.temporal import zone_error


@dataclass
class Site:
    key: str
    name: str
    data: Path | None = None
    specs: Path | None = None
    db_uri: str | None = None
    schemas: dict = field(default_factory=dict)
    simulate: dict | None = None
    entities: list[str] | None = None
    timezone: str = "UTC"  # the time zone of its days
    file: Path | None = None  # the sites file it came from

    def raw_dir(self, announce=lambda path: None) -> Path:
        """The site's raw directory; a simulated site is generated into the cache on first use."""
        if self.data is not None:
            return self.data
        return cached(self.key, self.simulate, announce)


def load_sites(path: str | Path) -> dict[str, Site]:
    """Sites by key; relative paths are relative to the directory that holds etc/ (or the file's own)."""
    path = Path(path)
    base = path.parent.parent if path.parent.name == "etc" else path.parent
    sites = {}
    for key, entry in read_config(path, "sites")["sites"].items():
        site = Site(
            key=key, name=entry["name"], db_uri=entry.get("db_uri"), schemas=entry.get("schemas", {}), file=path
        )
        site.data = base / entry["data"] if "data" in entry else None
        site.specs = base / entry["specs"] if "specs" in entry else None
        site.simulate, site.entities = entry.get("simulate"), entry.get("entities")
        site.timezone = entry.get("timezone", "UTC")
        if problem := zone_error(site.timezone):
            raise EngineError(f"{path}: site {key}: timezone {problem}")
        sites[key] = site
    return sites


def select(sites: dict[str, Site], names: tuple[str, ...]) -> list[Site]:
    """The named sites ('all' for every one), in the order given, each once."""
    if "all" in names:
        return list(sites.values())
    unknown = [n for n in names if n not in sites]
    if unknown:
        raise EngineError(
            f"--site: unknown site '{unknown[0]}'{did_you_mean(unknown[0], sites)}; known: {', '.join(sites)}"
        )
    return [sites[n] for n in dict.fromkeys(names)]


GENERATORS = "testbed_usage_engine.generators"


def generate(out: Path, params: dict) -> dict:
    """Write a raw directory with the generator `params["generator"]` names, given the other parameters;
    a parameter the generator refuses is one line."""
    installed = {ep.name: ep for ep in entry_points(group=GENERATORS)}
    name = params.get("generator")
    if name not in installed:
        known = ", ".join(sorted(installed)) or "none"
        raise EngineError(f"generator: unknown generator '{name}'{did_you_mean(name, installed)}; installed: {known}")
    arguments = {k: v for k, v in params.items() if k != "generator"}
    try:
        return installed[name].load()(out, **arguments)
    except (TypeError, ValueError) as exc:  # an unknown or out-of-range parameter
        raise EngineError(f"generator {name}: {exc}") from None


def cached(key: str, params: dict, announce=lambda path: None) -> Path:
    """A simulated site generated once into the user's cache, keyed by its parameters and the engine version.

    The directory is named by a digest of the parameters, never by their text: a value such as
    `America/Chicago` or `../x` must not become a path. A failed generation leaves nothing behind; a
    concurrent run that finished first is used as it is."""
    from engine import __version__

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "testbed-usage-engine"
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    path = root / f"{key}-{digest}-v{__version__}"
    if not path.is_dir():
        announce(path)
        tmp = beside(path, "partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            generate(tmp, params)
            tmp.rename(path)
        except OSError:
            if not path.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path
