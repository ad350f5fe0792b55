"""Test support for domain teams' tests: the pytest plugin, mesh builders and a dbutils
shape ship with meshops; the workspace double (`testing.workspace`) is left out of the wheel
and comes with the editable (test) install only."""
