"""Git glue. The only package that imports pygit2 (or runs the git executable)."""
