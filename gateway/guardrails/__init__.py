"""Guardrails: the guard stage of the /v1 pipeline (docs/guardrails.md).

`stage.py` runs it; `checks.py` is the registry of kinds; `detectors/` holds the offline
detectors; `masking.py` the reversible placeholders; `text.py` where each endpoint's text is.
"""
