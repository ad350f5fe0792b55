"""Test support shipped with meshops: fixtures and doubles that domain teams' tests reuse."""
