"""Observability without HTTP: Prometheus metrics (metrics.py, database.py) and structured logs (logs.py)."""
