"""Helpers of bench/run: the server process, and the report."""
