"""Whether the patient a file names is the patient it is being filed under.

A DICOM header carries the patient's name, ID and date of birth as the modality
recorded them. Filing another patient's image under this record is the error
that matters most in imaging, so every identifier the file carries must agree
with the record; identifiers the file leaves empty (an anonymised export, a
phantom) are not held against it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from stride.core.errors import Invalid


def _plain(text: str) -> str:
    """Case, accents, spaces and punctuation removed: "O'Brien-Núñez" → "obriennunez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).casefold()


def split_person_name(value: str) -> tuple[str, str]:
    """A DICOM person name ("Family^Given^Middle^Prefix^Suffix") as (family, given)."""
    parts = (value.split("=")[0]).split("^")
    family = parts[0].strip()
    given = parts[1].strip() if len(parts) > 1 else ""
    return family, given


def check_same_patient(
    *,
    file_name: str,
    file_id: str,
    file_birth_date: dt.date | None,
    family_name: str,
    given_name: str,
    record_number: str,
    birth_date: dt.date | None,
) -> None:
    """Raise :class:`Invalid` on ``file`` when an identifier in the file contradicts the record."""
    problems = []
    if file_id.strip() and record_number.strip() and _plain(file_id) != _plain(record_number):
        problems.append(f"patient ID {file_id.strip()!r} (this record is {record_number.strip()!r})")
    family, given = split_person_name(file_name)
    if family and _plain(family) != _plain(family_name):
        problems.append(f"family name {family!r}")
    elif given and given_name and not _same_given(given, given_name):
        problems.append(f"given name {given!r}")
    if file_birth_date and birth_date and file_birth_date != birth_date:
        problems.append(f"date of birth {file_birth_date:%d %b %Y}")
    if problems:
        raise Invalid(
            "This DICOM file names another patient: "
            + "; ".join(problems)
            + ". Check that you chose the right file and the right patient; nothing was stored.",
            "file",
        )


def _same_given(in_file: str, on_record: str) -> bool:
    """Given names agree when one's first name starts the other's ("Ann" and "Ann Marie", "Jo" and "Jo")."""
    first_file = _plain(in_file.split()[0]) if in_file.split() else ""
    first_record = _plain(on_record.split()[0]) if on_record.split() else ""
    return not first_file or not first_record or first_file == first_record
