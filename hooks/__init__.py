"""The thin Git hook scripts `git ml install` writes (shipped as gitml.hook_scripts)."""
