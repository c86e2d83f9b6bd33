"""Model files and their data: safe loading (skops, id check) shared by the gates and the
server, without importing either."""
