"""Reporting: the tables, figures, diagnostics and the FLOPs/parameter profile."""
