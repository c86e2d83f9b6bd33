"""Profiles, sizing, packaging, cluster manifests and compilation of served models."""
