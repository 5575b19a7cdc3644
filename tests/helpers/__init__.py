"""Helpers shared by the test folders (importable because ``tests/`` holds the root ``conftest.py``)."""
