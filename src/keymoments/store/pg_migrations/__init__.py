"""Alembic migrations of the operational store on PostgreSQL (run by ``store/postgres.py``)."""
