"""Sites (etc/sites.yaml): each site's raw data, spec set and databases; `--site` picks some or all."""

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError
from engine.expr import did_you_mean
from engine.spec.load import read_config


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
    file: Path | None = None  # the sites file it came from

    def raw_dir(self, announce=lambda path: None) -> Path:
        """The site's raw directory; a simulated site is generated into the cache on first use."""
        if self.data is not None:
            return self.data
        from engine.simulate import cached_site

        return cached_site(self.key, self.simulate, announce)


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
        sites[key] = site
    return sites


def select(sites: dict[str, Site], names: tuple[str, ...]) -> list[Site]:
    """The named sites ('all' for every one), in the order given."""
    if "all" in names:
        return list(sites.values())
    unknown = [n for n in names if n not in sites]
    if unknown:
        raise EngineError(
            f"--site: unknown site '{unknown[0]}'{did_you_mean(unknown[0], sites)}; known: {', '.join(sites)}"
        )
    return [sites[n] for n in names]
