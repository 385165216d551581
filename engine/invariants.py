"""The invariant catalogue (the user's IDs) and which invariants apply to an entity."""

CATALOGUE = {
    "INV-1": "valid_start is not null (else rejected: null_start)",
    "INV-2": "valid_start < valid_end, or valid_end null (else rejected: invalid_time_range)",
    "INV-3": "input rows = accepted + rejected + out of scope, per entity",
    "INV-4": "a counted child span lies inside its parent's validated span",
    "INV-5": "orphans are not clamped and not counted",
    "INV-6": "clamped rows keep original_start/original_end",
    "INV-7": "no identity is counted twice for the same time",
    "INV-8": "no derived metric is below zero at any instant",
    "INV-9": "sweepline counts are never negative",
    "INV-10": "span hours in the window = integral of the usage series",
    "INV-11": "tx_start <= tx_end (else rejected: invalid_tx_range)",
    "INV-12": "a projected (as-of T) run contains only facts recorded at or before T",
}
ALWAYS = ("INV-3",)
HIERARCHY = ("INV-4", "INV-5", "INV-6")


def _order(ids) -> list[str]:
    return sorted(set(ids), key=lambda i: int(i.split("-")[1]))


def applicable(spec: dict) -> list[str]:
    """Entity-level invariants checked for this entity: as declared (plus INV-3), else all that apply."""
    if "invariants" in spec:
        return _order([*spec["invariants"], *ALWAYS])
    ids = ["INV-1", "INV-2", "INV-3", "INV-7", "INV-11", "INV-12"]
    return _order(ids + (list(HIERARCHY) if "parent" in spec else []))
