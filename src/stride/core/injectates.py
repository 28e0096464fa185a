"""Injectates: which fields each kind needs, and the labels derived from them.

PRP classification labels (PAW, Mishra) and doses are *computed* from the
recorded counts, never typed by hand (DOMAIN.md, procedures and injectates).
A label is ``None`` when the counts needed for it were not recorded: better
no label than a wrong one.

Units used throughout:
  platelet counts   ×10³ per µL   (whole blood ~150–400, PRP typically 500–2000)
  TNC concentration ×10⁶ per mL
  volumes           mL
  doses             mg (drugs), ×10⁹ platelets, ×10⁶ nucleated cells
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stride.core.errors import Invalid

Number = Decimal | float | int


@dataclass(frozen=True)
class FieldRule:
    label: str
    unit: str
    low: float
    high: float


#: Every kind-specific field, with its plausible range.
FIELDS: dict[str, FieldRule] = {
    "volume_ml": FieldRule("injected volume", "mL", 0.05, 60),
    "dose_mg": FieldRule("dose", "mg", 0.1, 200),
    "concentration_pct": FieldRule("concentration", "%", 0.1, 100),
    "platelet_count": FieldRule("platelet concentration", "×10³/µL", 10, 10000),
    "baseline_platelet_count": FieldRule("whole-blood platelet count", "×10³/µL", 10, 1500),
    "aspirate_volume_ml": FieldRule("aspirate volume", "mL", 1, 240),
    "tnc_per_ml": FieldRule("nucleated-cell concentration", "×10⁶/mL", 0.01, 1000),
    "series_number": FieldRule("session number in the series", "", 1, 20),
    "sites_injected": FieldRule("number of sites injected", "", 1, 60),
}

#: Per kind: the fields that must be recorded, and those that may be.
REQUIRED: dict[str, tuple[str, ...]] = {
    "steroid": ("drug", "dose_mg"),
    "local-anaesthetic": ("drug", "volume_ml"),
    "prp": ("volume_ml", "platelet_count", "leukocytes", "activation"),
    "platelet-lysate": ("volume_ml",),
    "bmc": ("volume_ml", "aspirate_volume_ml"),
    "dextrose": ("concentration_pct", "volume_ml"),
    "alcohol": ("concentration_pct", "volume_ml"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "steroid": ("volume_ml",),
    "local-anaesthetic": ("concentration_pct",),
    "prp": ("baseline_platelet_count",),
    "platelet-lysate": ("platelet_count",),
    "bmc": ("tnc_per_ml",),
    "dextrose": ("sites_injected",),
    "alcohol": ("series_number",),
}
LEUKOCYTES = ("rich", "poor")
LABELS = {
    "drug": "drug",
    "leukocytes": "leukocyte content",
    "activation": "activation",
    **{name: rule.label for name, rule in FIELDS.items()},
}


def fields_for(kind: str) -> tuple[str, ...]:
    return REQUIRED[kind] + OPTIONAL[kind]


def validate(kind: str, values: Mapping[str, Any], *, drug_kind: str | None = None) -> None:
    """Check one injectate's values; raise :class:`Invalid` naming the first field at fault.

    ``values`` maps field names to values (``None`` or ``""`` when empty).
    ``drug_kind`` is the catalog kind of the chosen drug, if any.
    """
    if kind not in REQUIRED:
        raise Invalid(f"Unknown injectate kind {kind!r}.", "kind")
    allowed = set(fields_for(kind))
    for name in REQUIRED[kind]:
        if values.get(name) in (None, ""):
            raise Invalid(f"A {kind_label(kind)} injectate needs its {LABELS[name]}.", name)
    for name, value in values.items():
        if value in (None, ""):
            continue
        if name not in allowed:
            raise Invalid(
                f"The {LABELS.get(name, name)} does not apply to a {kind_label(kind)} injectate.", name
            )
        rule = FIELDS.get(name)
        if rule is not None and not rule.low <= value <= rule.high:
            raise Invalid(
                f"The {rule.label} must be between {rule.low:g} and {rule.high:g}"
                f"{' ' + rule.unit if rule.unit else ''}.",
                name,
            )
    if values.get("leukocytes") not in (None, "") and values["leukocytes"] not in LEUKOCYTES:
        raise Invalid("Leukocyte content must be 'rich' or 'poor'.", "leukocytes")
    if drug_kind is not None and drug_kind != kind:
        raise Invalid(f"That drug is not a {kind_label(kind)}.", "drug")
    baseline = values.get("baseline_platelet_count")
    count = values.get("platelet_count")
    if baseline not in (None, "") and count not in (None, "") and count < baseline:
        raise Invalid("The PRP platelet concentration is below the whole-blood count.", "platelet_count")


def kind_label(kind: str) -> str:
    return {
        "steroid": "corticosteroid",
        "local-anaesthetic": "local anaesthetic",
        "prp": "PRP",
        "platelet-lysate": "platelet lysate",
        "bmc": "bone-marrow concentrate",
        "dextrose": "dextrose",
        "alcohol": "alcohol",
    }.get(kind, kind)


# --------------------------------------------------------------------------- derived values


def platelet_dose_billions(platelet_count: Number | None, volume_ml: Number | None) -> float | None:
    """Injected platelets (×10⁹) = concentration (×10³/µL) × volume (mL) / 1000."""
    if platelet_count is None or volume_ml is None:
        return None
    return round(float(platelet_count) * float(volume_ml) / 1000, 2)


def fold_increase(platelet_count: Number | None, baseline: Number | None) -> float | None:
    if platelet_count is None or not baseline:
        return None
    return round(float(platelet_count) / float(baseline), 1)


def total_nucleated_cells_millions(tnc_per_ml: Number | None, volume_ml: Number | None) -> float | None:
    """Total nucleated cells injected (×10⁶) = concentration (×10⁶/mL) × volume (mL)."""
    if tnc_per_ml is None or volume_ml is None:
        return None
    return round(float(tnc_per_ml) * float(volume_ml), 1)


def paw_label(
    platelet_count: Number | None,
    baseline: Number | None,
    leukocytes: str | None,
    activation: str | None,
) -> str | None:
    """The PAW class (DeLong 2012), e.g. ``P3B`` or ``P4-x-A``.

    P: P1 ≤ baseline; P2 above baseline up to 750; P3 750–1250; P4 above 1250
    (×10³/µL). A: ``x`` when exogenously activated. W: ``A`` leukocyte-rich
    (above baseline), ``B`` leukocyte-poor. Neutrophil sub-grades are not
    recorded, so not given.
    """
    if platelet_count is None or leukocytes not in LEUKOCYTES or activation in (None, ""):
        return None
    count = float(platelet_count)
    if count > 1250:
        grade = "P4"
    elif count > 750:
        grade = "P3"
    elif baseline is None:
        return None  # P1 or P2 cannot be told apart without the whole-blood count
    elif count <= float(baseline):
        grade = "P1"
    else:
        grade = "P2"
    return grade + ("x" if activation != "none" else "") + ("A" if leukocytes == "rich" else "B")


def mishra_label(
    platelet_count: Number | None,
    baseline: Number | None,
    leukocytes: str | None,
    activation: str | None,
) -> str | None:
    """The Mishra type (2012): 1–4 by leukocytes and activation; A/B by ≥5× baseline platelets."""
    if leukocytes not in LEUKOCYTES or activation in (None, ""):
        return None
    activated = activation != "none"
    number = {("rich", False): 1, ("rich", True): 2, ("poor", False): 3, ("poor", True): 4}[
        (leukocytes, activated)
    ]
    fold = fold_increase(platelet_count, baseline)
    return f"{number}{'' if fold is None else ('A' if fold >= 5 else 'B')}"
