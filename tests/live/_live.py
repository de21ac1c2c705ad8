"""The live tests' helpers live in :mod:`keymoments.testing.live` (the chaos benchmark uses them too)."""

from keymoments.testing.live import PLAYBOOKS, make_events, publish, reference_decisions, stream_order

__all__ = ["PLAYBOOKS", "make_events", "publish", "reference_decisions", "stream_order"]
