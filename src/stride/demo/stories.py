"""The demo: two clinics, one login per role, and three patients whose stories Stride grew from.

The three patients are written as structured records in Stride's own words:

* a woman in her late fifties with a left Morton's neuroma, an earlier
  neuroma excision on the right, steroid injections that helped briefly and
  left the interdigital muscles wasted, then an ultrasound-guided platelet
  lysate injection;
* a runner of forty with 1st MTP arthritis after a bone-spur removal, treated
  with a same-day bone-marrow concentrate injection and prolotherapy to the
  joint's collateral ligaments;
* a man with chronic ankle instability on the regenerative course: two
  dextrose primers, bone-marrow concentrate with PRP, a PRP booster, and
  orthotics.

Each story's index treatment (``is_index``) starts its follow-up, and the
questionnaires the patient has already answered come with it
(``follow_up``: per time point, how many days after the invitation the
patient answered and their answers). The platelet-lysate patient is about
half better at one month and free of pain at the latest time point; the
runner is 60 % better at six months; the ankle patient gets steadily more
stable, and his six-month questionnaire is open today, not yet answered.

Two stories come with images, synthetic pictures with known geometry
(:mod:`stride.core.phantoms`) filed and measured as a clinician would
(:mod:`stride.demo.images`): the neuroma patient's ultrasound of both 3rd
interspaces before the platelet lysate and six months after (interosseous
muscle thickness and neuroma diameter), and the runner's weight-bearing DP
X-rays of the 1st MTP joint before the bone-marrow concentrate and six
months after (medial and lateral joint-space widths, La Trobe grades).

Dates are set relative to the day the demo is loaded, so follow-up falls due
as it would in a real clinic. Everything here is fiction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from stride.core.synth import answers_at

DEMO_PASSWORD_DEFAULT = "stride-demo-2026"


@dataclass(frozen=True)
class ClinicSpec:
    slug: str
    name: str
    time_zone: str


@dataclass(frozen=True)
class Login:
    username: str
    first_name: str
    last_name: str
    roles: dict[str, str]  # clinic slug -> role
    staff: bool = False
    superuser: bool = False


CLINICS = [
    ClinicSpec("lakeside", "Lakeside Foot & Ankle", "America/Los_Angeles"),
    ClinicSpec("harbour", "Harbour Sports Medicine", "Europe/London"),
]

LOGINS = [
    Login("clinician", "Maya", "Okafor", {"lakeside": "clinician"}),
    Login("coordinator", "Sam", "Brennan", {"lakeside": "coordinator"}),
    Login("researcher", "Ines", "Duarte", {"lakeside": "researcher", "harbour": "researcher"}),
    Login("admin", "Alex", "Moreau", {"lakeside": "admin", "harbour": "admin"}, staff=True, superuser=True),
    Login("clinician2", "Erik", "Lindqvist", {"harbour": "clinician"}),
]

#: Synthetic patients added around the stories, spread over both clinics.
SYNTH_PATIENTS = 300
SYNTH_SEED = 2026


@dataclass(frozen=True)
class Story:
    """One patient's record: plain data, turned into rows by :mod:`stride.demo.loader`."""

    clinic: str
    patient: dict[str, Any]
    consent: dict[str, Any]
    conditions: dict[str, dict[str, Any]]  # key -> condition fields (condition_type, site by code)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: An index procedure (``is_index``) may carry ``follow_up``: time point -> {"after": days
    #: after the invitation the patient answered, "answers": instrument -> answers}.
    procedures: list[dict[str, Any]] = field(default_factory=list)
    #: Images (:data:`IMAGE_FIELDS`), written by :mod:`stride.demo.images`.
    images: list[dict[str, Any]] = field(default_factory=list)


#: What a story image says. ``condition``: the story's condition key; ``day``: days from the
#: story's index treatment; ``phantom``: the synthetic picture (``kind`` ultrasound or xray, a
#: ``seed``, and the sizes drawn, in mm, given to :mod:`stride.core.phantoms`); ``laterality``,
#: ``site``, ``view``, ``note``: as on the upload form; ``measurements``: each a catalog ``type``
#: drawn on the phantom's ``landmark`` (or a graded ``value``), with ``site`` and ``qualifiers``;
#: ``annotations``: marks placed ``points_mm`` away from a ``landmark`` (x right, y down).
IMAGE_FIELDS = (
    "condition",
    "day",
    "phantom",
    "laterality",
    "site",
    "view",
    "note",
    "measurements",
    "annotations",
)


StoryAnswers = int | float | list[int | str | None]


def story_answers(instrument: str, value: StoryAnswers) -> list[int | str | None]:
    """A story's answers to one instrument, in item order.

    A whole number is the answer to a one-item instrument (pain 7, 50 %
    better); a fraction is a level of a multi-item one, 0 the worst and 1 the
    best whichever way its items are coded (:func:`stride.core.synth.answers_at`);
    a list is every answer as given.
    """
    if isinstance(value, bool):
        raise TypeError(f"{instrument}: {value!r} is not an answer.")
    if isinstance(value, int):
        return [value]
    if isinstance(value, float):
        return list(answers_at(instrument, value))
    return list(value)


def _born(today: dt.date, age: int, month: int, day: int) -> dt.date:
    """The birthday that makes the patient ``age`` years old today."""
    this_year = dt.date(today.year, month, day)
    return dt.date(today.year - age - (1 if this_year > today else 0), month, day)


def _years_ago(today: dt.date, years: int, month: int = 6, day: int = 15) -> dt.date:
    return dt.date(today.year - years, month, day)


def _interspace(
    side: str, *, day: int, seed: int, muscle_mm: float, neuroma_mm: float | None, **extra: Any
) -> dict[str, Any]:
    """An ultrasound of the 3rd interspace in short axis: interosseous thickness, and the neuroma if any."""
    measurements: list[dict[str, Any]] = [
        {
            "type": "interosseous-thickness",
            "landmark": "interosseous-thickness",
            "site": "interossei-3",
            "qualifiers": {"weight-bearing": "no"},
        }
    ]
    if neuroma_mm:
        measurements.append(
            {
                "type": "neuroma-diameter",
                "landmark": "neuroma-diameter",
                "site": "im-space-3",
                "qualifiers": {"compression": "without"},
            }
        )
    phantom = {"kind": "ultrasound", "seed": seed, "muscle_mm": muscle_mm, "neuroma_mm": neuroma_mm}
    return {
        "condition": "neuroma" if side == "left" else "neuroma-right",
        "day": day,
        "laterality": side,
        "site": "im-space-3",
        "view": "short-axis",
        "measurements": measurements,
        "annotations": [],
        **extra,
        "phantom": phantom | extra.get("phantom", {}),
    }


def _mtp_xray(
    *, day: int, seed: int, medial_mm: float, lateral_mm: float, jsn: int, **extra: Any
) -> dict[str, Any]:
    """A weight-bearing DP X-ray of the right 1st MTP joint: both joint-space widths, two La Trobe grades."""
    return {
        "condition": "mtp",
        "day": day,
        "phantom": {
            "kind": "xray",
            "seed": seed,
            "medial_mm": medial_mm,
            "lateral_mm": lateral_mm,
            "osteophyte_mm": 1.2,
        },
        "laterality": "right",
        "site": "mtp-1",
        "view": "dp",
        "measurements": [
            {"type": "mtp1-jsw-medial", "landmark": "mtp1-jsw-medial", "site": "mtp-1"},
            {"type": "mtp1-jsw-lateral", "landmark": "mtp1-jsw-lateral", "site": "mtp-1"},
            {"type": "latrobe-osteophyte", "value": 1, "site": "mtp-1", "qualifiers": {"view": "dp"}},
            {"type": "latrobe-jsn", "value": jsn, "site": "mtp-1", "qualifiers": {"view": "dp"}},
        ],
        "annotations": [],
        **extra,
    }


def stories(today: dt.date) -> list[Story]:
    def ago(days: int) -> dt.date:
        return today - dt.timedelta(days=days)

    neuroma_pl = ago(213)  # about seven months ago: baseline, 1, 3 and 6 months answered
    mtp_index = ago(205)
    ankle_index = ago(165)  # five and a half months ago: the six-month window is open today

    neuroma = Story(
        clinic="lakeside",
        patient={
            "record_number": "LFA-1001",
            "given_name": "Helen",
            "family_name": "Marsh",
            "date_of_birth": _born(today, 58, 3, 9),
            "sex": "female",
            "email": "helen.marsh@example.org",
            "phone": "+1 206 555 0141",
            "height_cm": "165.0",
            "weight_kg": "63.5",
            "activity_level": "recreational",
            "notes": "Prefers to avoid further foot surgery after the excision on her right foot. "
            "Walks daily; burning over the top of the left forefoot in closed shoes.",
        },
        consent={"version": "2026-1", "consented_on": ago(400)},
        conditions={
            "neuroma": {
                "condition_type": "morton-neuroma",
                "laterality": "left",
                "site": "im-space-3",
                "onset_date": _years_ago(today, 6, 9, 1),
                "severity_notes": "Burning pain radiating to the 3rd and 4th toes; positive Mulder click.",
            },
            "wasting": {
                "condition_type": "foot-muscle-wasting",
                "laterality": "left",
                "site": "interossei-3",
                "qualifiers": ["steroid-induced"],
                "episode": "S",
                "onset_date": ago(300),
                "severity_notes": "Visible hollowing between the 3rd and 4th metatarsals on the dorsum, "
                "noticed weeks after the steroid injection.",
            },
            "neuroma-right": {
                "condition_type": "morton-neuroma",
                "laterality": "right",
                "site": "im-space-3",
                "onset_date": _years_ago(today, 9, 5, 1),
                "status": "resolved",
                "resolved_on": _years_ago(today, 7, 11, 1),
                "severity_notes": "Treated by excision elsewhere.",
            },
        },
        history=[
            {
                "treatment": "footwear-change",
                "condition": "neuroma",
                "laterality": "left",
                "started_on": _years_ago(today, 6, 10, 1),
                "date_precision": "month",
                "provider": "self",
                "response": "partial",
                "relief_weeks": None,
                "notes": "Wide toe box; still sore by evening.",
            },
            {
                "treatment": "neurectomy",
                "condition": "neuroma-right",
                "laterality": "right",
                "started_on": _years_ago(today, 7, 11, 1),
                "date_precision": "year",
                "provider": "Outside foot surgeon",
                "response": "partial",
                "relief_weeks": None,
                "notes": "Excision of the right 3rd-space neuroma.",
            },
            {
                "treatment": "steroid-injection",
                "condition": "neuroma",
                "laterality": "left",
                "started_on": _years_ago(today, 6, 12, 1),
                "date_precision": "year",
                "provider": "Outside foot surgeon",
                "response": "none",
                "relief_weeks": None,
                "notes": "Injections to the left neuroma; little change.",
            },
        ],
        procedures=[
            {
                "condition": "neuroma",
                "performed_on": ago(330),
                "procedure_type": "digital-nerve-steroid",
                "clinician": "clinician",
                "site": "im-space-3",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "candidacy": "fair",
                "notes": "Given at the patient's request. Relief lasted about two months.",
                "injectates": [
                    {
                        "kind": "steroid",
                        "drug": "methylprednisolone-acetate",
                        "dose_mg": "40",
                        "volume_ml": "1",
                    },
                    {
                        "kind": "local-anaesthetic",
                        "drug": "lidocaine",
                        "volume_ml": "1",
                        "concentration_pct": "1",
                    },
                ],
                "adverse_events": [
                    {
                        "kind": "muscle-wasting",
                        "onset_date": ago(300),
                        "severity": "moderate",
                        "relatedness": "possibly",
                        "adjudicated_by": "clinician",
                        "description": "Interdigital wasting, 3rd space",
                    },
                ],
            },
            {
                "condition": "neuroma",
                "performed_on": neuroma_pl,
                "procedure_type": "perineural-platelet-lysate",
                "clinician": "clinician",
                "site": "im-space-3",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "is_index": True,
                "candidacy": "good",
                "notes": "Perineural injection around the common digital nerve of the 3rd space.",
                "injectates": [{"kind": "platelet-lysate", "volume_ml": "2"}],
                "follow_up": {
                    "baseline": {"after": 2, "answers": {"nprs": 7, "sane": 35, "faam-adl": 0.55}},
                    "1m": {
                        "after": 1,
                        "answers": {"nprs": 4, "percent-improvement": 50, "sane": 60, "faam-adl": 0.74},
                    },
                    "3m": {
                        "after": 5,
                        "answers": {"nprs": 1, "percent-improvement": 85, "sane": 85, "faam-adl": 0.92},
                    },
                    "6m": {
                        "after": 2,
                        "answers": {"nprs": 0, "percent-improvement": 100, "sane": 100, "faam-adl": 1.0},
                    },
                },
            },
        ],
        # Ultrasound of the 3rd interspace before the platelet lysate (the interossei wasted after the
        # steroid, the neuroma 6 mm across; a short clip) and at six months (the muscle back to about
        # 4 mm, the neuroma smaller), each time with the right foot for comparison.
        images=[
            _interspace(
                "left",
                day=0,
                seed=1001,
                muscle_mm=2.4,
                neuroma_mm=6.2,
                phantom={"frames": 8},
                note="Before the platelet lysate. Interossei thin since the steroid injection.",
                annotations=[
                    {
                        "kind": "arrow",
                        "landmark": "neuroma-centre",
                        "points_mm": [(6.5, -8.0), (2.9, -2.4)],
                        "text": "Neuroma",
                    }
                ],
            ),
            _interspace(
                "right",
                day=0,
                seed=1002,
                muscle_mm=4.3,
                neuroma_mm=None,
                note="Right foot for comparison (neuroma excised).",
            ),
            _interspace(
                "left",
                day=183,
                seed=1003,
                muscle_mm=4.0,
                neuroma_mm=4.1,
                note="Six months after the platelet lysate.",
            ),
            _interspace(
                "right", day=183, seed=1004, muscle_mm=4.3, neuroma_mm=None, note="Right foot for comparison."
            ),
        ],
    )

    runner = Story(
        clinic="lakeside",
        patient={
            "record_number": "LFA-1002",
            "given_name": "Dana",
            "family_name": "Fielding",
            "date_of_birth": _born(today, 40, 1, 20),
            "sex": "female",
            "email": "dana.fielding@example.org",
            "phone": "+1 206 555 0178",
            "height_cm": "170.0",
            "weight_kg": "61.0",
            "activity_level": "competitive",
            "notes": "Mother of five; runs obstacle-course races. "
            "Treated here for low-back pain in earlier years.",
        },
        consent={"version": "2026-1", "consented_on": mtp_index - dt.timedelta(days=21)},
        conditions={
            "mtp": {
                "condition_type": "hallux-rigidus",
                "laterality": "right",
                "site": "mtp-1",
                "onset_date": _years_ago(today, 5, 4, 1),
                "severity_notes": "Constant big-toe pain limiting running since the bone-spur removal; "
                "medial joint line narrowed on the weight-bearing X-ray.",
            },
        },
        history=[
            {
                "treatment": "cheilectomy",
                "condition": "mtp",
                "laterality": "right",
                "started_on": _years_ago(today, 4, 5, 1),
                "date_precision": "year",
                "provider": "Outside orthopaedic surgeon",
                "response": "none",
                "relief_weeks": None,
                "notes": "Dorsal bone spur removed; pain persisted.",
            },
            {
                "treatment": "orthotics",
                "condition": "mtp",
                "laterality": "right",
                "started_on": _years_ago(today, 3, 2, 1),
                "date_precision": "month",
                "provider": "Podiatrist",
                "response": "partial",
                "relief_weeks": 12,
                "notes": "Carbon-fibre plate insert.",
            },
        ],
        procedures=[
            {
                "condition": "mtp",
                "performed_on": mtp_index,
                "procedure_type": "bmc-injection",
                "clinician": "clinician",
                "site": "mtp-1",
                "laterality": "right",
                "image_guidance": "ultrasound",
                "is_index": True,
                "candidacy": "good",
                "notes": "Same-day bone-marrow concentrate into the 1st MTP joint.",
                "follow_up": {
                    "baseline": {
                        "after": 1,
                        "answers": {"nprs": 6, "sane": 40, "faam-adl": 0.62, "faam-sports": 0.22},
                    },
                    "1m": {
                        "after": 2,
                        "answers": {
                            "nprs": 5,
                            "percent-improvement": 20,
                            "sane": 45,
                            "faam-adl": 0.66,
                            "faam-sports": 0.28,
                        },
                    },
                    "3m": {
                        "after": 6,
                        "answers": {
                            "nprs": 3,
                            "percent-improvement": 45,
                            "sane": 60,
                            "faam-adl": 0.8,
                            "faam-sports": 0.5,
                        },
                    },
                    "6m": {
                        "after": 1,
                        "answers": {
                            "nprs": 2,
                            "percent-improvement": 60,
                            "sane": 70,
                            "faam-adl": 0.88,
                            "faam-sports": 0.66,
                        },
                    },
                },
                "injectates": [
                    {"kind": "bmc", "volume_ml": "2", "aspirate_volume_ml": "60", "tnc_per_ml": "42"},
                    {
                        "kind": "prp",
                        "volume_ml": "1",
                        "platelet_count": "1400",
                        "baseline_platelet_count": "240",
                        "leukocytes": "poor",
                        "activation": "none",
                    },
                ],
            },
            {
                "condition": "mtp",
                "performed_on": mtp_index,
                "procedure_type": "prolotherapy",
                "clinician": "clinician",
                "site": "mtp-1-collaterals",
                "laterality": "right",
                "image_guidance": "ultrasound",
                "candidacy": "good",
                "notes": "Ligament injections to the medial and lateral collaterals of the joint.",
                "injectates": [
                    {"kind": "dextrose", "concentration_pct": "12.5", "volume_ml": "3", "sites_injected": 4}
                ],
            },
        ],
        # Weight-bearing DP X-rays of the right 1st MTP joint before the bone-marrow concentrate and at
        # six months: the medial joint space wider after.
        images=[
            _mtp_xray(
                day=-9,
                seed=2001,
                medial_mm=0.9,
                lateral_mm=1.8,
                jsn=2,
                note="Weight-bearing, before the bone-marrow concentrate.",
                annotations=[
                    {
                        "kind": "text",
                        "landmark": "mtp1-jsw-medial",
                        "points_mm": [(5.5, 8.0)],
                        "text": "Medial space narrowed",
                    }
                ],
            ),
            _mtp_xray(
                day=182,
                seed=2002,
                medial_mm=1.4,
                lateral_mm=1.9,
                jsn=1,
                note="Weight-bearing, six months after.",
            ),
        ],
    )

    ankle = Story(
        clinic="lakeside",
        patient={
            "record_number": "LFA-1003",
            "given_name": "Tomás",
            "family_name": "Reyes",
            "date_of_birth": _born(today, 34, 8, 2),
            "sex": "male",
            "email": "tomas.reyes@example.org",
            "phone": "+1 206 555 0112",
            "height_cm": "181.0",
            "weight_kg": "92.0",
            "activity_level": "recreational",
            "notes": "Plays five-a-side football; the left ankle gives way on uneven ground.",
        },
        consent={"version": "2026-1", "consented_on": ankle_index - dt.timedelta(days=40)},
        conditions={
            "cai": {
                "condition_type": "ankle-instability-ligamentous",
                "laterality": "left",
                "site": "atfl-cfl",
                "onset_date": _years_ago(today, 3, 7, 1),
                "severity_notes": "Repeated inversion sprains since a bad sprain three years ago; "
                "positive anterior drawer.",
            },
        },
        history=[
            {
                "treatment": "physical-therapy",
                "condition": "cai",
                "laterality": "left",
                "started_on": _years_ago(today, 3, 8, 1),
                "date_precision": "month",
                "provider": "Community physiotherapy",
                "response": "partial",
                "relief_weeks": 20,
                "notes": "Balance and peroneal strengthening.",
            },
            {
                "treatment": "bracing",
                "condition": "cai",
                "laterality": "left",
                "started_on": _years_ago(today, 2, 3, 1),
                "date_precision": "month",
                "provider": "self",
                "response": "partial",
                "relief_weeks": None,
                "notes": "Lace-up brace for sport.",
            },
            {
                "treatment": "orthotics",
                "condition": "cai",
                "laterality": "left",
                "started_on": ankle_index + dt.timedelta(days=7),
                "date_precision": "day",
                "provider": "Lakeside orthotist",
                "response": "unknown",
                "relief_weeks": None,
                "notes": "Custom orthotics for the rehabilitation phase.",
            },
        ],
        procedures=[
            {
                "condition": "cai",
                "performed_on": ankle_index - dt.timedelta(days=28),
                "procedure_type": "prolotherapy",
                "clinician": "clinician",
                "site": "atfl-cfl",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "candidacy": "good",
                "notes": "Primer 1 of 2.",
                "injectates": [
                    {"kind": "dextrose", "concentration_pct": "15", "volume_ml": "6", "sites_injected": 8}
                ],
            },
            {
                "condition": "cai",
                "performed_on": ankle_index - dt.timedelta(days=14),
                "procedure_type": "prolotherapy",
                "clinician": "clinician",
                "site": "atfl-cfl",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "candidacy": "good",
                "notes": "Primer 2 of 2.",
                "injectates": [
                    {"kind": "dextrose", "concentration_pct": "15", "volume_ml": "6", "sites_injected": 8}
                ],
            },
            {
                "condition": "cai",
                "performed_on": ankle_index,
                "procedure_type": "bmc-injection",
                "clinician": "clinician",
                "site": "atfl-cfl",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "is_index": True,
                "candidacy": "good",
                "notes": "Bone-marrow concentrate with PRP into the ATFL and CFL.",
                # Six months: open today, left for the patient (and the worklist).
                "follow_up": {
                    "baseline": {
                        "after": 3,
                        "answers": {
                            "nprs": 5,
                            "sane": 45,
                            "faam-adl": 0.7,
                            "faam-sports": 0.34,
                            "cait": 0.3,
                        },
                    },
                    "1m": {
                        "after": 1,
                        "answers": {
                            "nprs": 4,
                            "percent-improvement": 25,
                            "sane": 55,
                            "faam-adl": 0.77,
                            "faam-sports": 0.44,
                            "cait": 0.47,
                        },
                    },
                    "3m": {
                        "after": 2,
                        "answers": {
                            "nprs": 2,
                            "percent-improvement": 55,
                            "sane": 75,
                            "faam-adl": 0.9,
                            "faam-sports": 0.69,
                            "cait": 0.7,
                        },
                    },
                },
                "injectates": [
                    {"kind": "bmc", "volume_ml": "3", "aspirate_volume_ml": "60", "tnc_per_ml": "35"},
                    {
                        "kind": "prp",
                        "volume_ml": "3",
                        "platelet_count": "1100",
                        "baseline_platelet_count": "230",
                        "leukocytes": "rich",
                        "activation": "none",
                    },
                ],
                "adverse_events": [
                    {
                        "kind": "harvest-site-pain",
                        "onset_date": ankle_index,
                        "severity": "mild",
                        "relatedness": "related",
                        "adjudicated_by": "clinician",
                        "resolved_on": ankle_index + dt.timedelta(days=4),
                        "description": "Sore posterior iliac crest",
                    },
                ],
            },
            {
                "condition": "cai",
                "performed_on": ankle_index + dt.timedelta(days=49),
                "procedure_type": "prp-injection",
                "clinician": "clinician",
                "site": "atfl-cfl",
                "laterality": "left",
                "image_guidance": "ultrasound",
                "candidacy": "good",
                "notes": "PRP booster at seven weeks.",
                "injectates": [
                    {
                        "kind": "prp",
                        "volume_ml": "4",
                        "platelet_count": "980",
                        "baseline_platelet_count": "225",
                        "leukocytes": "poor",
                        "activation": "none",
                    },
                ],
            },
        ],
    )
    return [neuroma, runner, ankle]
