"""Reconstruct the capacity and utilization history of an OpenStack testbed from its databases."""

__version__ = "0.1.0"
