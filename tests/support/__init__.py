"""Helpers for the reliability tests: damaging store objects, running gitml without
root's permission bypass, a small file system. Imported by tests, never by conftest."""
