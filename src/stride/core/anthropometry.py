"""Body measures derived from height and weight."""

from __future__ import annotations

from decimal import Decimal

HEIGHT_CM = (50.0, 250.0)
WEIGHT_KG = (20.0, 350.0)


def bmi(height_cm: Decimal | float | None, weight_kg: Decimal | float | None) -> float | None:
    """Body-mass index in kg/m², to one decimal; ``None`` when either measure is missing."""
    if not height_cm or not weight_kg:
        return None
    metres = float(height_cm) / 100
    return round(float(weight_kg) / (metres * metres), 1)


def bmi_category(value: float | None) -> str:
    """The WHO adult category of a BMI value ('' when unknown)."""
    if value is None:
        return ""
    if value < 18.5:
        return "underweight"
    if value < 25:
        return "normal"
    if value < 30:
        return "overweight"
    return "obese"
