"""keymoments: find the moments of truth in customer journeys and act on them."""

__version__ = "0.1.0"
