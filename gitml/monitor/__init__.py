"""Monitoring served models from their traffic log: windows, drift, live metrics, learned
limits, alarms, Prometheus export, self-healing and retraining.

Pure statistics live in :mod:`windows`, :mod:`stats` and :mod:`sequential` (DataFrames in,
dataclasses out); :mod:`check` wires them to a repository, the traffic log and the
deployed version's reference data.
"""
