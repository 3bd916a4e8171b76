"""Ogem's offline detectors: regular expressions narrowed by validators (docs/guardrails.md)."""
