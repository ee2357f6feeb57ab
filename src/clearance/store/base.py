"""The declarative base that every table of Clearance is defined on.

Each area keeps its own tables next to its code (``identity/tables.py``,
``policy/tables.py``, ``audit/tables.py``); they all share this metadata so
that Alembic migrations and tests see one schema.
"""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
