"""Visible self-checks, one module per lab: they run in the student's kernel and explain failures in words."""
