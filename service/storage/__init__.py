"""Storage: the database (engine, sessions, migrations), the ORM, and the data functions for jobs.

Data functions add and flush; their caller owns the session and commits. ORM rows become the training
engine's records (`StepRecord`, `EpochRecord`) in `orm.py` and nowhere else.
"""
