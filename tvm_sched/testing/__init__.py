"""Helpers for tests and tutorials: canonical DAGs and brute-force reference optima.

Nothing here is imported by the library itself.
"""
