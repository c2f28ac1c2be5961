"""The cold-start tool behind ``python test_cold_start.py``: spawn the servers, time them, report."""
