"""Dashboard pages of the act layer (cases, budgets, playbooks); mounted as the act layer lands."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Mount the case queue, budgets and playbooks pages."""
