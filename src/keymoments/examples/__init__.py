"""Demo data with planted ground truth: :func:`generate_airline` builds a realistic airline dataset."""

from keymoments.examples.airline import AirlineDemo, generate_airline

__all__ = ["AirlineDemo", "generate_airline"]
