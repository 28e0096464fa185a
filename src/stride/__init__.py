"""Stride: a treatment-and-outcomes registry for foot and ankle clinics."""

__version__ = "0.1.0"
