"""Shared fixtures. Area fixtures live in each area's conftest (tests/<area>/conftest.py)."""
