"""Lineage, environment and metrics manifests that travel with commits.

Kept empty on purpose: ``gitml.runs.tracking`` must import in milliseconds, and
every submodule imports only what its own job needs.
"""
