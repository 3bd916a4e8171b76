"""The web portal: people manage their own keys, see their usage, teams and models, and try /v1.

It composes keys, billing and the gateway's registry, so it sits above them (docs/architecture.md).
"""
