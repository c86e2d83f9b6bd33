"""Artifacts in a work tree: add / status / checkout (worktree), transfer to remotes (sync),
gc and fsck, and reading any artifact at any revision (api)."""
