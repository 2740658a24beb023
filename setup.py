"""The one packaging detail pyproject.toml cannot say: the wheel carries alembic/ as service/migrations.

The migrations live at the top of the repository (alembic/), but a wheel cannot install them there: a top-level
`alembic` would shadow the alembic library. So the folder is mapped into the service package, and
service/storage/db.py looks for it there when the source tree's alembic/ is absent.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["service", "service.*", "models", "models.*"], exclude=["*.__pycache__"]),
        "service.migrations",
        "service.migrations.versions",
    ],
    package_dir={"service.migrations": "alembic"},
)
