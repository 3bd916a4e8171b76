"""Callbacks to LLM observability platforms (docs/callbacks.md): one module per vendor, each
a `Sink` (base.py) named in registry.py; the dispatcher delivers events off the request path."""
