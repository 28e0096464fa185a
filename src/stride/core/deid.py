"""De-identification for research exports: the HIPAA Safe Harbor rules as plain functions.

Safe Harbor (45 CFR 164.514(b)(2)) lists 18 kinds of identifier that must be
removed from data about a person before it counts as de-identified.
:data:`SAFE_HARBOR` names each one and what Stride does about it; the
functions below are the rules the research export applies to every value:

- **pseudonyms** (:func:`pseudonym`): a keyed hash of a record's internal id,
  stable for one export key (two exports with the same key can be joined),
  different under another key, and not reversible without the key;
- **dates** (:func:`days_from`, :func:`shifted`, :func:`offset_for`,
  :func:`export_day`): either days counted from each patient's own day 0
  ("index"), or calendar dates moved by a secret per-patient offset of
  1 to 182 days either way ("shift"); intervals within a patient survive both;
- **ages** (:func:`age_group`): whole years, and "90+" for anyone older than 89;
  a year of birth is never exported;
- **small cells** (:func:`rare_values`, :func:`collapse`, :func:`suppress_counts`):
  in tables of counts a count of 1 … minimum − 1 is withheld; in the row-level
  tables a category fewer than ``minimum`` patients share is replaced by
  :data:`OTHER`.

Nothing here touches a database: the export reads the rows and calls these.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from stride.core.errors import Invalid

# --------------------------------------------------------------------------- the Safe Harbor list


@dataclass(frozen=True)
class Identifier:
    """One Safe Harbor identifier category and how Stride treats it in a research export."""

    code: str  # the letter of 45 CFR 164.514(b)(2)(i), A … R
    name: str
    stride: str  # what Stride holds of it and what the export does


SAFE_HARBOR: tuple[Identifier, ...] = (
    Identifier(
        "A",
        "Names",
        "Patients' given and family names are never read by the export; neither are the names of "
        "clinicians, coordinators or other users (procedures, measurements and answers are exported "
        "without who recorded them), nor person names inside image files (the files are not exported).",
    ),
    Identifier(
        "B",
        "Geographic subdivisions smaller than a state (street address, city, county, ZIP code)",
        "Stride stores no address or ZIP code. The clinic a patient attends, which points at a town, "
        "is exported only as a keyed clinic pseudonym; clinics with fewer patients than the "
        "small-cell minimum are pooled as 'other'.",
    ),
    Identifier(
        "C",
        "All elements of dates (except year) directly related to a person; ages over 89",
        "No calendar date is exported in 'index' mode: every date becomes the number of days from "
        "the patient's own day 0 (their first index treatment). In 'shift' mode dates are moved by "
        "a secret per-patient offset. Ages are whole years at day 0, with every age over 89 given "
        "as '90+'; the date and year of birth are never exported.",
    ),
    Identifier("D", "Telephone numbers", "Patients' phone numbers are never read by the export."),
    Identifier("E", "Fax numbers", "Stride stores no fax number."),
    Identifier(
        "F",
        "Email addresses",
        "Patients' and users' email addresses are never read by the export.",
    ),
    Identifier("G", "Social Security numbers", "Stride stores no Social Security number."),
    Identifier(
        "H",
        "Medical record numbers",
        "The clinic's record number is never read by the export. Internal row ids are replaced by "
        "keyed pseudonyms, so no Stride id appears either.",
    ),
    Identifier("I", "Health plan beneficiary numbers", "Stride stores no health plan or insurance number."),
    Identifier("J", "Account numbers", "Stride stores no account number."),
    Identifier(
        "K",
        "Certificate or licence numbers",
        "Stride stores no certificate or licence number (nor clinicians' licence numbers).",
    ),
    Identifier(
        "L",
        "Vehicle identifiers and serial numbers, including licence plates",
        "Stride stores no vehicle identifier.",
    ),
    Identifier(
        "M",
        "Device identifiers and serial numbers",
        "Scanner serial numbers, station names and UIDs live only inside the image files, which the "
        "export never opens; an image is exported as its modality, view and side only.",
    ),
    Identifier(
        "N",
        "Web addresses (URLs)",
        "Patients' questionnaire links and calendar feed addresses are never read by the export.",
    ),
    Identifier(
        "O",
        "IP addresses",
        "IP addresses are kept only in the audit trail, which the export never reads.",
    ),
    Identifier(
        "P",
        "Biometric identifiers, including finger and voice prints",
        "Stride stores no biometric identifier.",
    ),
    Identifier(
        "Q",
        "Full-face photographs and comparable images",
        "No image, photograph, rendition or DICOM file is exported, nor any original file name: only "
        "the measurements taken on images, as numbers with their unit.",
    ),
    Identifier(
        "R",
        "Any other unique identifying number, characteristic or code",
        "Free text (clinical notes, site and target notes, severity notes, adverse-event "
        "descriptions, image and measurement notes, narratives, providers) is never exported, as it "
        "may hold any of the above. Pseudonyms are keyed hashes of internal ids, not of anything "
        "about the person, and the key stays with the registry (the re-identification code of "
        "164.514(c)). Categories fewer than the small-cell minimum of patients share are pooled as "
        "'other'.",
    ),
)


# --------------------------------------------------------------------------- keys and pseudonyms

#: The shortest export key accepted: a short key could be guessed, and with it the pseudonyms.
KEY_MIN_LENGTH = 12

#: What each pseudonym starts with, by the kind of record it stands for.
KINDS: Mapping[str, str] = {
    "patient": "P",
    "clinic": "K",
    "condition": "C",
    "procedure": "X",
    "episode": "E",
    "image": "I",
}

#: Key stretching: one derivation per key (cached), so a guessed key costs a guesser as much.
_ITERATIONS = 200_000
_SALT = b"stride-research-export/v1"


def check_key(key: object) -> str:
    """The export key, checked: text of at least :data:`KEY_MIN_LENGTH` characters."""
    if not isinstance(key, str) or not key.strip():
        raise Invalid("Give an export key: the pseudonyms and date offsets are derived from it.", "key")
    if len(key) < KEY_MIN_LENGTH:
        raise Invalid(
            f"The export key is {len(key)} characters long; use at least {KEY_MIN_LENGTH} so it "
            "cannot be guessed.",
            "key",
        )
    return key


@lru_cache(maxsize=16)
def _secret(key: str) -> bytes:
    """The key, stretched (PBKDF2-HMAC-SHA256): every hash below is keyed with this."""
    return hashlib.pbkdf2_hmac("sha256", check_key(key).encode(), _SALT, _ITERATIONS)


def fingerprint(key: str) -> str:
    """A short public name of an export key (``3fa2-91c0-77de``): says which key, reveals nothing of it.

    Two exports with the same fingerprint share their pseudonyms and offsets.
    """
    digest = hmac.new(_secret(key), b"fingerprint", hashlib.sha256).hexdigest()[:12]
    return "-".join(digest[i : i + 4] for i in range(0, 12, 4))


class Pseudonymiser:
    """Pseudonyms and date offsets under one export key (the key is stretched once).

    ``Pseudonymiser(key)("patient", 42)`` → ``"P9c1d…"`` (16 hex digits after the kind's letter).
    """

    def __init__(self, key: str) -> None:
        secret = _secret(key)
        # One keyed hasher per kind, copied for each id: the key is absorbed once.
        self._hashers = {
            kind: hashlib.blake2b(key=secret, digest_size=8, person=b"stride-" + kind.encode()[:9])
            for kind in KINDS
        }
        self._offsets = hashlib.blake2b(key=secret, digest_size=8, person=b"stride-offset")

    def __call__(self, kind: str, record_id: int) -> str:
        try:
            hasher = self._hashers[kind].copy()
        except KeyError:
            raise Invalid(f"Unknown kind of record {kind!r} for a pseudonym.", "kind") from None
        hasher.update(b"%d" % record_id)
        return KINDS[kind] + hasher.hexdigest()

    def offset(self, patient_id: int) -> int:
        """The patient's date shift in days: −182 … −1 or 1 … 182, never 0."""
        hasher = self._offsets.copy()
        hasher.update(b"%d" % patient_id)
        n = int.from_bytes(hasher.digest(), "big") % (2 * MAX_SHIFT_DAYS)
        return n - MAX_SHIFT_DAYS if n < MAX_SHIFT_DAYS else n - MAX_SHIFT_DAYS + 1


def pseudonym(key: str, kind: str, record_id: int) -> str:
    """The pseudonym of record ``record_id`` of ``kind`` (patient, clinic, condition, …) under ``key``.

    A keyed BLAKE2b hash of the internal id: the same under the same key, unrelated under another,
    and not reversible without the key.
    """
    return Pseudonymiser(key)(kind, record_id)


# --------------------------------------------------------------------------- dates

#: The two ways an export gives dates: days from day 0, or calendar dates shifted per patient.
DATE_MODES = ("index", "shift")

#: The largest date shift, in days (half a year); a shift is never 0.
MAX_SHIFT_DAYS = 182


def check_mode(mode: object) -> str:
    if mode not in DATE_MODES:
        raise Invalid(f"Unknown date mode {mode!r}; choose 'index' or 'shift'.", "dates")
    return str(mode)


def offset_for(key: str, patient_id: int) -> int:
    """The patient's secret date shift under ``key``: −182 … −1 or 1 … 182 days, never 0, always the
    same for the same key and patient."""
    return Pseudonymiser(key).offset(patient_id)


def days_from(index_date: dt.date, day: dt.date | None) -> int | None:
    """Days from ``index_date`` to ``day`` (negative before it); ``None`` for no day."""
    if day is None:
        return None
    return (day - index_date).days


def shifted(day: dt.date | None, offset: int) -> dt.date | None:
    """``day`` moved by ``offset`` days; ``None`` for no day."""
    if day is None:
        return None
    return day + dt.timedelta(days=offset)


def export_day(mode: str, day: dt.date | None, *, day0: dt.date, offset: int) -> int | dt.date | None:
    """A patient's date as exported: days from their ``day0`` ("index") or shifted ("shift")."""
    if mode == "index":
        return days_from(day0, day)
    if mode == "shift":
        if offset == 0:
            raise Invalid("A date shift of 0 days would export the true date.", "offset")
        return shifted(day, offset)
    raise Invalid(f"Unknown date mode {mode!r}; choose 'index' or 'shift'.", "dates")


# --------------------------------------------------------------------------- ages and body measures

#: The oldest age exported as itself; anyone older is "90+".
OLDEST_AGE = 89
AGE_OVER = "90+"


def age_group(age: int | None) -> str:
    """Whole years as text ("47"), or "90+" for any age over 89 (Safe Harbor); "" when unknown."""
    if age is None:
        return ""
    if age < 0:
        raise Invalid(f"An age cannot be negative ({age}).", "age")
    return AGE_OVER if age > OLDEST_AGE else str(int(age))


def bmi_value(bmi: float | None) -> int | None:
    """A BMI as exported: rounded to a whole kg/m²."""
    return None if bmi is None else round(bmi)


# --------------------------------------------------------------------------- small cells

#: What a category fewer than the minimum of patients share becomes in the row-level tables.
OTHER = "other"


def check_minimum(minimum: object) -> int:
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise Invalid(
            f"The small-cell minimum must be a whole number of at least 1, got {minimum!r}.", "minimum"
        )
    return minimum


def rare_values(patients_per_value: Mapping[str, int], minimum: int) -> frozenset[str]:
    """The values of a category column shared by 1 … ``minimum`` − 1 patients (blank values never).

    With ``minimum`` 1 nothing is rare.
    """
    check_minimum(minimum)
    return frozenset(
        value
        for value, count in patients_per_value.items()
        if value not in ("", None) and 0 < count < minimum
    )


def collapse(value: str | None, rare: frozenset[str]) -> str | None:
    """``value``, or :data:`OTHER` when it is one of the ``rare`` values."""
    return OTHER if value in rare else value


def suppress_counts(rows: Iterable[tuple[str, int]], minimum: int) -> list[tuple[str, int | None]]:
    """Counts of 1 … ``minimum`` − 1 withheld (``None``, shown as "< minimum"), in the order given.

    A count of 0 identifies nobody and is kept. Used for every table of counts an export writes
    (the category table beside the data dictionary, the README's counts).
    """
    check_minimum(minimum)
    return [(label, None if 0 < count < minimum else count) for label, count in rows]


def count_text(count: int | None, minimum: int) -> str:
    """A count as a table of counts shows it: the number, or "<5" when withheld."""
    return f"<{minimum}" if count is None else str(count)
