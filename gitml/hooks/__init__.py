"""Git hooks: installing them (install, configure) and their bodies (entry, gates).

The thin shell scripts that Git runs live in the top-level ``hooks/`` folder and ship as
``gitml.hook_scripts``; each one calls ``git-ml-hook NAME`` (:mod:`gitml.hooks.entry`).
"""
