"""Synthetic OpenStack testbeds for the engine: its demo, its test oracle and its benchmark input.

A plugin of the engine, not a part of it: the engine knows only that a sites file's `simulate:` names a
generator (an entry point of the group `testbed_usage_engine.generators`), and calls it with the other
parameters. This package's one generator, `chameleon`, writes a Chameleon-style site (bare metal, KVM or
edge) in the upstream table layout with its ground truth.
"""
