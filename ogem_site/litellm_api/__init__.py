"""LiteLLM's management API at the root (`/key/generate`, `/team/new`, ...), over Ogem's tenancy.

A translation layer only: each route renames LiteLLM's fields and runs the same /api/v1 resource
(its validation, role rules, tenant scoping and audit), so nothing here decides who may do what.
See docs/migrating-from-litellm.md.
"""
