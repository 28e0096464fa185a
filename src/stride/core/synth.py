"""Synthetic patients: deterministic, plausible, and valid by construction.

:func:`generate` turns ``(seed, n, clinics, clinicians, today)`` into ``n``
:class:`SynthPatient` records — plain frozen dataclasses holding the patient,
the registry consent, the conditions, the treatment history and the
procedures with their injectates and adverse events. The Django side
(:mod:`stride.demo.synth_writer`) writes them in bulk.

Determinism: one ``random.Random(seed)`` drives everything and the clock is
never read (only the ``today`` argument), so the same arguments always give
the same patients. Each patient draws from the stream on its own, so the
first ``k`` patients are the same whatever ``n`` is.

Plausibility: each condition has its own age, sex, BMI and activity mix,
its own treatment ladder (what patients tried before coming) and its own
procedure plans (the conventional ladders and the regenerative protocols of
DOMAIN.md). The numbers are made up to look like a clinic's, not taken from
any study.

Validity: every record obeys :mod:`stride.core.rules`, the catalog
(:func:`stride.core.catalog.resolve_condition_codes`) and
:func:`stride.core.injectates.validate`; :func:`check_patient` runs those
checks on one generated patient, for tests.

Follow-up: each condition's index treatment (the first regenerative or
steroid injection, the bone-marrow concentrate after dextrose primers, and
any surgery, which starts a new episode) gets a :class:`SynthEpisode` with one
:class:`SynthFollowUp` per time point of the schedule
(:mod:`stride.core.schedule`). For every window already open on ``today`` the
generator decides whether the patient answered (realistic non-response that
falls with time, likelier for those who answered the time point before),
when (inside the window, after one of the contacts), what (the questionnaires
of the schedule for the condition, answered from a per-episode latent
improvement curve: responders, non-responders, relapses, steroid relief that
fades) and which contacts were made (invitation, reminder, phone call,
letter, with their outcomes). Outcomes draw from a stream of their own, so
adding them left every patient's clinical record as it was.

Record numbers are ``S<seed>-<index>`` (index counted from 1, at least six
digits), so runs with different seeds never clash.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from bisect import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import accumulate
from math import exp
from typing import Any, NamedTuple

from stride.core import anthropometry, injectates, rules, scoring
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.core.catalog import Catalog, catalog, resolve_condition_codes
from stride.core.errors import Invalid

SEXES = ("female", "male", "other", "unknown")
ACTIVITY_LEVELS = ("sedentary", "recreational", "competitive", "")
RESPONSES = ("none", "partial", "full", "unknown")
CANDIDACY = ("good", "fair", "poor")
SEVERITIES = ("mild", "moderate", "severe", "serious")
RELATEDNESS = ("related", "possibly", "unlikely", "unrelated")
CONSENT_VERSIONS = ("2021-1", "2023-1", "2024-2", "2025-1")

#: How far back the registry goes: first visits fall within this many days before today.
REGISTRY_DAYS = 5 * 365


def record_prefix(seed: int) -> str:
    """The record-number prefix of every patient generated with ``seed``."""
    return f"S{seed}-"


def record_number(seed: int, index: int) -> str:
    return f"{record_prefix(seed)}{index:06d}"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SynthConsent:
    version: str
    consented_on: dt.date
    withdrawn_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class SynthCondition:
    condition_type: str  # catalog condition code
    laterality: str  # left | right | bilateral (bilateral only where the catalog has a code)
    site: str  # catalog site code, one of the condition's sites
    episode: str  # "A", "D", "S" where a 7th character is needed, else ""
    qualifiers: tuple[str, ...]
    onset_date: dt.date
    status: str  # active | resolved
    resolved_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class SynthHistory:
    condition: int  # index into the patient's conditions
    treatment: str  # catalog treatment code
    started_on: dt.date
    date_precision: str  # day | month | year
    laterality: str
    provider: str
    response: str  # none | partial | full | unknown
    relief_weeks: int | None = None


@dataclass(frozen=True, slots=True)
class SynthInjectate:
    kind: str
    drug: str = ""  # catalog drug code
    dose_mg: Decimal | None = None
    volume_ml: Decimal | None = None
    concentration_pct: Decimal | None = None
    platelet_count: Decimal | None = None
    baseline_platelet_count: Decimal | None = None
    leukocytes: str = ""
    activation: str = ""
    aspirate_volume_ml: Decimal | None = None
    tnc_per_ml: Decimal | None = None
    series_number: int | None = None
    sites_injected: int | None = None

    def values(self) -> dict[str, Any]:
        """The kind-specific values, as :func:`stride.core.injectates.validate` reads them."""
        return {
            "drug": self.drug or None,
            "dose_mg": self.dose_mg,
            "volume_ml": self.volume_ml,
            "concentration_pct": self.concentration_pct,
            "platelet_count": self.platelet_count,
            "baseline_platelet_count": self.baseline_platelet_count,
            "leukocytes": self.leukocytes,
            "activation": self.activation,
            "aspirate_volume_ml": self.aspirate_volume_ml,
            "tnc_per_ml": self.tnc_per_ml,
            "series_number": self.series_number,
            "sites_injected": self.sites_injected,
        }


@dataclass(frozen=True, slots=True)
class SynthAdverseEvent:
    kind: str  # catalog adverse-event code
    severity: str
    relatedness: str
    onset_date: dt.date
    resolved_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class SynthProcedure:
    condition: int  # index into the patient's conditions
    procedure_type: str  # catalog procedure code
    performed_on: dt.date
    laterality: str  # left | right (the condition's side)
    site: str  # catalog site code of the target structure
    image_guidance: str
    candidacy: str
    clinician: str  # username of one of the clinic's clinicians ("" when it has none)
    injectates: tuple[SynthInjectate, ...] = ()
    adverse_events: tuple[SynthAdverseEvent, ...] = ()
    is_index: bool = False  # the treatment outcomes are measured from (starts an episode)


Answer = int | str | None

# The follow-up records are named tuples rather than frozen dataclasses: a large run makes
# millions of them, and a frozen dataclass is several times slower to build.


class SynthAnswers(NamedTuple):
    instrument: str  # instrument code
    answers: tuple[Answer, ...]  # in item order, as coded on the form


class SynthContact(NamedTuple):
    kind: str  # invitation | reminder | phone-call | letter
    channel: str  # email | phone | letter
    day: dt.date  # the day it was due (and made)
    state: str  # sent | failed | done | open | cancelled
    outcome: str = ""  # "" while open
    finished_on: dt.date | None = None


class SynthFollowUp(NamedTuple):
    timepoint: str  # a time point code of the schedule
    status: str  # completed | missed | due | pending | cancelled, as of today
    collected_on: dt.date | None = None  # when answered (completed only)
    source: str = ""  # patient | paper (completed only)
    responses: tuple[SynthAnswers, ...] = ()  # one per instrument of the time point (completed only)
    contacts: tuple[SynthContact, ...] = ()


class SynthEpisode(NamedTuple):
    condition: int  # index into the patient's conditions
    procedure: int  # index into the patient's procedures: the index treatment
    index_date: dt.date
    follow_ups: tuple[SynthFollowUp, ...]  # one per time point of the schedule, in its order
    ended_on: dt.date | None = None
    end_reason: str = ""  # new-index | withdrawn


@dataclass(frozen=True, slots=True)
class SynthPatient:
    clinic: str  # clinic slug
    record_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    sex: str
    email: str
    phone: str
    height_cm: Decimal | None
    weight_kg: Decimal | None
    activity_level: str
    consent: SynthConsent
    conditions: tuple[SynthCondition, ...]
    history: tuple[SynthHistory, ...]
    procedures: tuple[SynthProcedure, ...]
    episodes: tuple[SynthEpisode, ...] = ()


# --------------------------------------------------------------------------- randomness


class _Random(random.Random):
    """``random.Random`` with a quicker ``randint`` and ``choice`` (both from ``random()``).

    The stdlib versions draw bits until a value falls in range, which is exact
    but costs a few microseconds each, and a large run makes millions of draws.
    The bias of scaling one 53-bit float is far below anything a synthetic
    registry could show.
    """

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]


# --------------------------------------------------------------------------- weighted choice


class _Table:
    """A weighted choice, with its cumulative weights computed once."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum = list(accumulate(weight for _, weight in pairs))
        self.total = self.cum[-1]

    def pick(self, r: random.Random) -> Any:
        return self.items[bisect(self.cum, r.random() * self.total)]


def _table(**weights: float) -> _Table:
    return _Table([(k.replace("_", "-"), w) for k, w in weights.items()])


def _sample(r: random.Random, pairs: Sequence[tuple[str, float]], k: int) -> list[str]:
    """``k`` distinct items drawn by weight, in draw order."""
    pool = list(pairs)
    chosen: list[str] = []
    while pool and len(chosen) < k:
        total = sum(w for _, w in pool)
        x = r.random() * total
        for i, (item, w) in enumerate(pool):
            x -= w
            if x < 0 or i == len(pool) - 1:
                chosen.append(item)
                del pool[i]
                break
    return chosen


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


# --------------------------------------------------------------------------- names

_FEMALE = (
    "Amara", "Anna", "Aiko", "Aoife", "Ayesha", "Beatriz", "Camille", "Chiara", "Chloé", "Daniela",
    "Elif", "Emma", "Ewa", "Fatima", "Freya", "Grace", "Hana", "Ingrid", "Isabel", "Jana",
    "Julia", "Kavya", "Leila", "Lerato", "Lucía", "Mai", "Maria", "Mei", "Nadia", "Ngozi",
    "Nia", "Olga", "Priya", "Rosa", "Sara", "Signe", "Sofia", "Thandiwe", "Yasmin", "Zoë",
)  # fmt: skip
_MALE = (
    "Ahmed", "Alejandro", "Arjun", "Ben", "Carlos", "Chen", "Daniel", "David", "Emeka", "Erik",
    "Finn", "Hamza", "Hiroshi", "Ibrahim", "Ivan", "Jakub", "James", "João", "Jonas", "Kofi",
    "Kwame", "Lars", "Liam", "Luca", "Malik", "Mateo", "Mohammed", "Noah", "Oliver", "Omar",
    "Pablo", "Paolo", "Rahul", "Samuel", "Sipho", "Tariq", "Thomas", "Tomasz", "Wei", "Yusuf",
)  # fmt: skip
_FAMILY = (
    "Abe", "Adeyemi", "Ahmed", "Ali", "Andersen", "Bauer", "Becker", "Bianchi", "Brown", "Chen",
    "Cohen", "Costa", "da Silva", "Dubois", "Eriksson", "Fernández", "Fischer", "García", "Haddad",
    "Hansen", "Hoang", "Hussain", "Jensen", "Johnson", "Kaur", "Kelly", "Khan", "Kim", "Kowalski",
    "Kumar", "Larsen", "Lee", "Levi", "Li", "López", "Martin", "Mensah", "Moreau", "Müller",
    "Murphy", "Mwangi", "Nakamura", "Nguyen", "Nkosi", "Novak", "Nowak", "Núñez", "O'Brien",
    "Okafor", "Olsen", "Öztürk", "Park", "Patel", "Pereira", "Petrov", "Popescu", "Romano",
    "Rossi", "Santos", "Sato", "Schmidt", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor",
    "van der Berg", "Walsh", "Wang", "Williams", "Wilson", "Yamamoto", "Y\u0131lmaz", "Zhang",
)  # fmt: skip


def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name.replace("\u0131", "i")).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


_ASCII = {name: _ascii(name) for name in (*_FEMALE, *_MALE, *_FAMILY)}
_EMAIL_DOMAINS = ("example.org", "example.com", "example.net")


# --------------------------------------------------------------------------- condition profiles


@dataclass(frozen=True)
class _Profile:
    weight: float  # how often it is a patient's first condition
    age: tuple[float, float, int, int]  # mean, sd, youngest, oldest (years, at the first visit)
    female: float  # share of women
    bmi_shift: float
    activity: _Table
    sites: _Table
    onset_days: tuple[int, int]  # onset to first visit, days (min, max; log-uniform)
    history: tuple[tuple[str, float], ...]  # treatments tried before, by weight
    bilateral: float = 0.0  # share recorded as bilateral (only where the catalog has the code)


def _activity(sedentary: float, recreational: float, competitive: float, unknown: float) -> _Table:
    return _Table(
        [
            ("sedentary", sedentary),
            ("recreational", recreational),
            ("competitive", competitive),
            ("", unknown),
        ]
    )


_OA_HISTORY = (
    ("nsaids", 5), ("physical-therapy", 4), ("bracing", 2), ("footwear-change", 2),
    ("steroid-injection", 3), ("hyaluronic-acid-injection", 2), ("activity-modification", 2),
)  # fmt: skip
_INSTABILITY_HISTORY = (
    ("physical-therapy", 6), ("bracing", 5), ("orthotics", 2), ("activity-modification", 2),
    ("nsaids", 2), ("ligament-repair", 0.5),
)  # fmt: skip

PROFILES: dict[str, _Profile] = {
    "morton-neuroma": _Profile(
        20, (52, 8, 25, 85), 0.82, 0.0, _activity(30, 50, 8, 12),
        _Table([("im-space-3", 75), ("im-space-2", 22), ("im-space-4", 3)]), (60, 1500),
        (("footwear-change", 6), ("padding", 5), ("nsaids", 3), ("orthotics", 3),
         ("steroid-injection", 4), ("alcohol-injection", 1), ("neurectomy", 0.4)),
        bilateral=0.07,
    ),
    "foot-muscle-wasting": _Profile(
        1, (55, 9, 25, 85), 0.8, 0.0, _activity(35, 45, 5, 15),
        _Table([("interossei-3", 40), ("interossei-2", 30), ("interossei-4", 10),
                ("interossei-1", 5), ("abductor-hallucis", 15)]),
        (60, 900), (("physical-therapy", 4), ("footwear-change", 2), ("orthotics", 2)),
    ),
    "hallux-rigidus": _Profile(
        14, (53, 9, 30, 80), 0.6, 0.5, _activity(25, 55, 12, 8),
        _Table([("mtp-1", 1)]), (120, 2500),
        (("footwear-change", 5), ("orthotics", 5), ("nsaids", 4), ("activity-modification", 2),
         ("steroid-injection", 3), ("hyaluronic-acid-injection", 1), ("cheilectomy", 0.5)),
    ),
    "ankle-oa-primary": _Profile(
        6, (61, 9, 40, 90), 0.45, 1.5, _activity(55, 35, 2, 8),
        _Table([("tibiotalar", 80), ("subtalar", 20)]), (180, 3000), _OA_HISTORY,
    ),
    "ankle-oa-post-traumatic": _Profile(
        5, (50, 11, 25, 85), 0.4, 1.0, _activity(40, 45, 7, 8),
        _Table([("tibiotalar", 85), ("subtalar", 15)]), (180, 3000), _OA_HISTORY,
    ),
    "ankle-oa-secondary": _Profile(
        2, (58, 11, 30, 90), 0.5, 1.5, _activity(55, 35, 2, 8),
        _Table([("tibiotalar", 75), ("subtalar", 25)]), (180, 3000), _OA_HISTORY,
    ),
    "ankle-instability": _Profile(
        10, (32, 8, 17, 60), 0.5, -0.5, _activity(10, 55, 30, 5),
        _Table([("atfl", 40), ("atfl-cfl", 35), ("cfl", 15), ("deltoid", 10)]), (120, 2500),
        _INSTABILITY_HISTORY,
    ),
    "ankle-instability-ligamentous": _Profile(
        5, (34, 9, 18, 62), 0.45, -0.5, _activity(10, 55, 30, 5),
        _Table([("atfl", 40), ("atfl-cfl", 40), ("cfl", 12), ("deltoid", 8)]), (365, 4000),
        _INSTABILITY_HISTORY,
    ),
    "ankle-sprain": _Profile(
        8, (31, 12, 16, 75), 0.5, -0.5, _activity(15, 50, 30, 5),
        _Table([("atfl", 65), ("cfl", 15), ("deltoid", 8), ("tibiofibular", 12)]), (3, 60),
        (("activity-modification", 5), ("bracing", 4), ("nsaids", 4), ("physical-therapy", 3)),
    ),
    "plantar-fasciitis": _Profile(
        20, (50, 9, 25, 80), 0.6, 2.0, _activity(35, 48, 10, 7),
        _Table([("plantar-fascia", 1)]), (60, 1200),
        (("footwear-change", 4), ("orthotics", 6), ("night-splint", 3), ("physical-therapy", 5),
         ("nsaids", 4), ("eswt", 2), ("steroid-injection", 3)),
    ),
    "achilles-tendinopathy": _Profile(
        9, (45, 10, 20, 80), 0.45, 0.5, _activity(15, 55, 25, 5),
        _Table([("achilles-midportion", 60), ("achilles-insertion", 40)]), (60, 1500),
        (("physical-therapy", 7), ("activity-modification", 4), ("eswt", 3), ("nsaids", 3),
         ("orthotics", 2), ("prp-injection", 1)),
    ),
}  # fmt: skip
_FIRST_CONDITION = _Table([(code, p.weight) for code, p in PROFILES.items()])
_EXCLUSIVE = {
    "ankle-instability": "ankle-instability-ligamentous",
    "ankle-instability-ligamentous": "ankle-instability",
}

_PROVIDERS = {
    "conservative": ("self", "GP", "podiatrist", "physiotherapist", "sports physician"),
    "injection": ("GP", "another clinic", "sports physician", "orthopaedic clinic"),
    "surgery": ("orthopaedic surgeon", "another clinic", "podiatric surgeon"),
}
_TREATMENT_CATEGORY = {
    "steroid-injection": "injection", "alcohol-injection": "injection",
    "prp-injection": "injection", "prolotherapy": "injection",
    "hyaluronic-acid-injection": "injection", "neurectomy": "surgery",
    "cheilectomy": "surgery", "arthrodesis": "surgery", "ligament-repair": "surgery",
    "other-surgery": "surgery",
}  # fmt: skip
_RESPONSE = {
    "conservative": _Table([("none", 35), ("partial", 40), ("full", 5), ("unknown", 20)]),
    "injection": _Table([("none", 20), ("partial", 50), ("full", 15), ("unknown", 15)]),
    "surgery": _Table([("none", 30), ("partial", 40), ("full", 20), ("unknown", 10)]),
}
_HISTORY_COUNT = _Table([(0, 15), (1, 25), (2, 30), (3, 20), (4, 10)])
_PRECISION = _Table([("day", 50), ("month", 35), ("year", 15)])
_CANDIDACY = _Table([("good", 55), ("fair", 35), ("poor", 10)])
_SEVERITY = _Table([("mild", 70), ("moderate", 22), ("severe", 6), ("serious", 2)])
_RELATEDNESS = _Table([("related", 45), ("possibly", 35), ("unlikely", 15), ("unrelated", 5)])
_EPISODE = _Table([("A", 60), ("D", 30), ("S", 10)])

# --------------------------------------------------------------------------- injectates

_STEROIDS = _Table(
    [
        ("methylprednisolone-acetate", 40),
        ("triamcinolone-acetonide", 35),
        ("dexamethasone", 15),
        ("betamethasone", 10),
    ]
)
_STEROID_DOSES = {
    "methylprednisolone-acetate": (20, 40, 40, 80),
    "triamcinolone-acetonide": (10, 20, 40),
    "dexamethasone": (2, 4, 4, 8),
    "betamethasone": (3, 6),
}
_ANAESTHETICS = _Table([("lidocaine", 60), ("bupivacaine", 30), ("ropivacaine", 10)])
_ANAESTHETIC_PCT = {
    "lidocaine": (1, 1, 2),
    "bupivacaine": (0.25, 0.5),
    "ropivacaine": (0.2, 0.5, 0.75),
}
_ACTIVATION = _Table([("none", 65), ("calcium-chloride", 15), ("thrombin", 12), ("light", 8)])
_DEXTROSE_PCT = (12.5, 15, 15, 20, 25)
_ALCOHOL_PCT = (4, 4, 4, 20, 50)


def _steroid(r: random.Random) -> SynthInjectate:
    drug = _STEROIDS.pick(r)
    volume = _dec(r.choice((0.5, 1.0, 1.0, 2.0)), 2) if r.random() < 0.5 else None
    return SynthInjectate(
        "steroid", drug=drug, dose_mg=_dec(r.choice(_STEROID_DOSES[drug]), 2), volume_ml=volume
    )


def _anaesthetic(r: random.Random) -> SynthInjectate:
    drug = _ANAESTHETICS.pick(r)
    pct = _dec(r.choice(_ANAESTHETIC_PCT[drug]), 2) if r.random() < 0.7 else None
    return SynthInjectate(
        "local-anaesthetic",
        drug=drug,
        volume_ml=_dec(r.randint(1, 10) / 2, 2),
        concentration_pct=pct,
    )


def _prp(r: random.Random, volume: tuple[float, float]) -> SynthInjectate:
    count = min(max(r.gauss(1100, 350), 400), 3000)
    baseline = _dec(r.uniform(150, 400), 1) if r.random() < 0.6 else None
    return SynthInjectate(
        "prp",
        volume_ml=_dec(r.uniform(*volume), 1),
        platelet_count=_dec(count, 1),
        baseline_platelet_count=baseline,
        leukocytes="poor" if r.random() < 0.55 else "rich",
        activation=_ACTIVATION.pick(r),
    )


def _lysate(r: random.Random) -> SynthInjectate:
    count = _dec(r.uniform(800, 3000), 1) if r.random() < 0.4 else None
    return SynthInjectate("platelet-lysate", volume_ml=_dec(r.uniform(1, 3), 1), platelet_count=count)


def _bmc(r: random.Random) -> SynthInjectate:
    tnc = _dec(min(max(r.lognormvariate(3.2, 0.6), 1), 300), 2) if r.random() < 0.7 else None
    return SynthInjectate(
        "bmc",
        volume_ml=_dec(r.randint(4, 20) / 2, 1),
        aspirate_volume_ml=_dec(r.randint(30, 120), 1),
        tnc_per_ml=tnc,
    )


def _dextrose(r: random.Random, joint: bool) -> SynthInjectate:
    sites = r.randint(2, 12) if r.random() < 0.6 else None
    return SynthInjectate(
        "dextrose",
        concentration_pct=_dec(r.choice(_DEXTROSE_PCT), 2),
        volume_ml=_dec(r.uniform(2, 8) if joint else r.uniform(3, 20), 1),
        sites_injected=sites,
    )


def _alcohol(r: random.Random, session: int) -> SynthInjectate:
    return SynthInjectate(
        "alcohol",
        concentration_pct=_dec(r.choice(_ALCOHOL_PCT), 2),
        volume_ml=_dec(r.choice((0.5, 0.5, 1.0, 1.5)), 2),
        series_number=session,
    )


# What each step of a plan injects (its main injectate; a local anaesthetic may be added).
_STEROID, _PRP, _LYSATE, _BMC, _BMC_PRP, _DEXTROSE, _ALCOHOL, _NONE = (
    "steroid", "prp", "lysate", "bmc", "bmc+prp", "dextrose", "alcohol", "none",
)  # fmt: skip

# A step: (procedure code, days after the previous step (min, max), what it injects,
# target site or "" for the condition's own site).
Step = tuple[str, tuple[int, int], str, str]


def _repeat(code: str, times: int, gap: tuple[int, int], what: str, site: str = "") -> list[Step]:
    return [(code, (0, 42) if i == 0 else gap, what, site) for i in range(times)]


def _plan(r: random.Random, code: str, site: str) -> list[Step]:
    """The procedures done for one condition, in order.

    Each step's gap counts from the step before; the first step's from the visit.
    """
    x = r.random()
    if code == "morton-neuroma":
        if x < 0.35:
            plan = _repeat("digital-nerve-steroid", r.randint(1, 3), (35, 70), _STEROID)
            if r.random() < 0.4:
                sessions = _repeat("digital-nerve-alcohol", r.randint(3, 7), (7, 14), _ALCOHOL)
                plan += [(sessions[0][0], (42, 120), *sessions[0][2:]), *sessions[1:]]
                if r.random() < 0.25:
                    plan.append(("neurectomy", (60, 180), _NONE, ""))
            return plan
        if x < 0.45:
            return [
                *_repeat("digital-nerve-steroid", 1, (0, 0), _STEROID),
                ("neurectomy", (60, 240), _NONE, ""),
            ]
        if x < 0.82:
            return _repeat("perineural-platelet-lysate", 2 if r.random() < 0.3 else 1, (28, 42), _LYSATE)
        if x < 0.95:
            return _repeat("prp-injection", 1, (0, 0), _PRP if r.random() < 0.6 else _LYSATE)
        return []
    if code == "foot-muscle-wasting":
        if x < 0.6:
            return _repeat("prp-injection", r.randint(1, 2), (28, 56), _LYSATE)
        return []
    if code == "hallux-rigidus":
        if x < 0.3:
            joint = "small-joint-injection-us" if r.random() < 0.6 else "small-joint-injection"
            plan = _repeat(joint, r.randint(1, 2), (90, 180), _STEROID)
            if r.random() < 0.15:
                plan.append(("cheilectomy", (60, 240), _NONE, ""))
            return plan
        if x < 0.6:  # the 1st MTP protocol: BMC in the joint, dextrose to its collaterals, same day
            return [
                ("bmc-injection", (0, 42), _BMC_PRP if r.random() < 0.4 else _BMC, ""),
                ("prolotherapy", (0, 0), _DEXTROSE, "mtp-1-collaterals"),
            ]
        if x < 0.75:
            return _repeat("small-joint-injection-us", r.randint(1, 2), (28, 56), _PRP)
        if x < 0.85:
            return _repeat("prolotherapy", r.randint(2, 4), (21, 42), _DEXTROSE, "mtp-1-collaterals")
        if x < 0.93:
            return [("cheilectomy", (14, 90), _NONE, "")]
        if x < 0.95:
            return [("mtp-arthrodesis", (14, 120), _NONE, "")]
        return []
    if code in ("ankle-instability", "ankle-instability-ligamentous"):
        if x < 0.45:  # the regenerative course: primers, BMC with PRP, a PRP booster
            primers = _repeat("prolotherapy", 3 if r.random() < 0.2 else 2, (12, 16), _DEXTROSE)
            return [
                *primers,
                ("bmc-injection", (12, 16), _BMC_PRP, ""),
                ("prp-injection", (42, 56), _PRP, ""),
            ]
        if x < 0.65:
            return _repeat("prolotherapy", r.randint(2, 4), (21, 35), _DEXTROSE)
        if x < 0.8:
            return _repeat("prp-injection", r.randint(1, 2), (42, 90), _PRP)
        if x < 0.95 and site != "deltoid":
            return [("lateral-ligament-repair", (14, 120), _NONE, "")]
        return []
    if code.startswith("ankle-oa"):
        if x < 0.35:
            joint = "ankle-joint-injection-us" if r.random() < 0.5 else "ankle-joint-injection"
            plan = _repeat(joint, r.randint(1, 3), (90, 200), _STEROID)
            if r.random() < 0.08:
                plan.append(("ankle-arthrodesis", (90, 365), _NONE, ""))
            return plan
        if x < 0.6:
            return _repeat("ankle-joint-injection-us", r.randint(1, 3), (28, 42), _PRP)
        if x < 0.75:
            return _repeat("prp-injection", r.randint(1, 2), (28, 60), _PRP)
        if x < 0.9:
            return _repeat("bmc-injection", 1, (0, 0), _BMC_PRP if r.random() < 0.5 else _BMC)
        if x < 0.93:
            return [("ankle-arthrodesis", (30, 180), _NONE, "")]
        return []
    if code == "plantar-fasciitis":
        if x < 0.35:
            return _repeat("ligament-injection", r.randint(1, 2), (42, 120), _STEROID)
        if x < 0.6:
            return _repeat("ligament-injection", 1, (0, 0), _PRP)
        if x < 0.8:
            return _repeat("prp-injection", r.randint(1, 2), (42, 90), _PRP)
        if x < 0.9:
            return _repeat("ligament-injection", r.randint(2, 3), (21, 35), _DEXTROSE)
        return []
    if code == "achilles-tendinopathy":
        if x < 0.4:
            return _repeat("tendon-insertion-injection", r.randint(1, 2), (42, 90), _PRP)
        if x < 0.65:
            return _repeat("prp-injection", r.randint(1, 2), (42, 90), _PRP)
        if x < 0.75:
            return _repeat("tendon-insertion-injection", 1, (0, 0), _STEROID)
        if x < 0.85:
            return _repeat("prolotherapy", r.randint(2, 4), (21, 42), _DEXTROSE)
        return []
    if code == "ankle-sprain":
        if x < 0.3:
            return _repeat("prp-injection", 1, (0, 0), _PRP)
        if x < 0.5:
            return _repeat("prolotherapy", r.randint(1, 3), (14, 28), _DEXTROSE)
        if x < 0.65:
            return _repeat("ligament-injection", 1, (0, 0), _PRP if r.random() < 0.6 else _DEXTROSE)
        return []
    return []


_JOINTS = {"mtp-1", "tibiotalar", "subtalar"}
_SMALL = {
    "im-space-2",
    "im-space-3",
    "im-space-4",
    "interossei-1",
    "interossei-2",
    "interossei-3",
    "interossei-4",
}


def _injectates(r: random.Random, what: str, site: str, session: int) -> tuple[SynthInjectate, ...]:
    if what == _NONE:
        return ()
    small = site in _SMALL
    if what == _STEROID:
        main: list[SynthInjectate] = [_steroid(r)]
    elif what == _PRP:
        main = [_prp(r, (1, 2) if small else (2, 6))]
    elif what == _LYSATE:
        main = [_lysate(r)]
    elif what == _BMC:
        main = [_bmc(r)]
    elif what == _BMC_PRP:
        main = [_bmc(r), _prp(r, (2, 5))]
    elif what == _DEXTROSE:
        main = [_dextrose(r, site in _JOINTS)]
    else:
        main = [_alcohol(r, session)]
    # Steroid and alcohol are mostly given mixed with a local anaesthetic; biologics less often
    # (anaesthetic may blunt the healing response).
    share = 0.85 if what in (_STEROID, _ALCOHOL, _DEXTROSE) else 0.35
    if r.random() < share:
        main.append(_anaesthetic(r))
    return tuple(main)


_ADVERSE = {
    _STEROID: (("injection-flare", 40), ("fat-atrophy", 20), ("depigmentation", 15),
               ("vasovagal", 10), ("infection", 3), ("other", 5)),
    _ALCOHOL: (("injection-flare", 50), ("numbness", 30), ("vasovagal", 10), ("other", 5)),
    _BMC: (("harvest-site-pain", 50), ("injection-flare", 35), ("vasovagal", 10), ("infection", 2)),
    _NONE: (("infection", 30), ("numbness", 30), ("other", 25)),
    "": (("injection-flare", 70), ("vasovagal", 15), ("infection", 3), ("other", 7)),
}  # fmt: skip


def _adverse_kinds(what: str, code: str, condition: str) -> list[tuple[str, float]]:
    pairs = list(_ADVERSE.get(what) or _ADVERSE[_BMC if what == _BMC_PRP else ""])
    if what == _STEROID and condition == "morton-neuroma":
        pairs.append(("muscle-wasting", 15))
    if what == _STEROID and condition == "plantar-fasciitis":
        pairs.append(("plantar-fascia-rupture", 5))
    if code == "neurectomy":
        pairs.append(("stump-neuroma", 40))
    return pairs


# --------------------------------------------------------------------------- the generator


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def _other_side(laterality: str) -> str:
    return "left" if laterality == "right" else "right"


class _Builder:
    """Builds one patient after another from one random stream."""

    def __init__(
        self,
        seed: int,
        clinics: Sequence[str],
        clinicians: Mapping[str, Sequence[str]],
        today: dt.date,
        cat: Catalog,
    ) -> None:
        self.r = _Random(seed)
        self.seed = seed
        self.clinics = list(clinics)
        self.clinicians = {slug: tuple(clinicians.get(slug, ())) for slug in self.clinics}
        self.today = today
        self.cat = cat
        self.guidance = {code: p.guidance for code, p in cat.procedures.items()}
        self.bilateral = {code: c.allows_bilateral for code, c in cat.conditions.items()}
        self.seventh = {code: c.seventh_character for code, c in cat.conditions.items()}
        # Findings whose added code takes the episode character too (steroid-induced wasting).
        self.findings = {
            code: tuple(q.code for q in c.qualifiers if q.icd10.endswith("-"))
            for code, c in cat.conditions.items()
        }
        for code in PROFILES:
            cat.condition(code)  # fail early if the catalog lost a condition the profiles use
        self.outcomes = _Outcomes(seed, today, cat)

    # -- one patient

    def patient(self, index: int) -> SynthPatient:
        r = self.r
        today = self.today
        clinic = self.clinics[(index - 1) % len(self.clinics)]
        first = _FIRST_CONDITION.pick(r)
        profile = PROFILES[first]

        x = r.random()
        if x < 0.005:
            sex = "other"
        elif x < 0.01:
            sex = "unknown"
        else:
            sex = "female" if r.random() < profile.female else "male"
        mean, sd, youngest, oldest = profile.age
        age = min(max(r.gauss(mean, sd), youngest), oldest)
        visit = today - _days(int(REGISTRY_DAYS * r.random() ** 1.4))  # more patients recently
        born = visit - _days(int(age * 365.25))

        if sex == "female" or (sex != "male" and r.random() < 0.5):
            given = r.choice(_FEMALE)
            height = r.gauss(163, 7)
        else:
            given = r.choice(_MALE)
            height = r.gauss(177, 7.5)
        family = r.choice(_FAMILY)
        height = min(max(height, 140.0), 205.0)
        bmi = min(max(r.gauss(26 + profile.bmi_shift, 4), 16.0), 50.0)
        weight = min(max(bmi * (height / 100) ** 2, 35.0), 200.0)
        measured = r.random() < 0.92
        email = ""
        if r.random() < 0.85:
            email = f"{_ASCII[given]}.{_ASCII[family]}{r.randint(1, 99)}@{r.choice(_EMAIL_DOMAINS)}"
        phone = ""
        if r.random() < 0.9:
            if r.random() < 0.6:
                phone = f"+44 7700 900{r.randint(0, 999):03d}"
            else:
                phone = f"+1 202-555-01{r.randint(0, 99):02d}"

        # The first condition, what was tried before the first visit, and the procedures since.
        conditions: list[SynthCondition] = []
        history: list[SynthHistory] = []
        procedures: list[SynthProcedure] = []
        self._condition(first, born, visit, conditions, history, procedures, clinic, prior=True)

        y = r.random()
        if y < 0.2:
            if first == "morton-neuroma" and self._first_steroid(procedures, history) and r.random() < 0.6:
                self._wasting(born, conditions, history, procedures, clinic)
            elif first != "ankle-sprain" and conditions[0].laterality != "bilateral" and r.random() < 0.25:
                # the same condition on the other side: two conditions, one per side
                self._condition(
                    first,
                    born,
                    self._later(visit),
                    conditions,
                    history,
                    procedures,
                    clinic,
                    prior=r.random() < 0.5,
                    side=_other_side(conditions[0].laterality),
                )
            else:
                second = first
                while second == first or _EXCLUSIVE.get(first) == second or second == "foot-muscle-wasting":
                    second = _FIRST_CONDITION.pick(r)
                prior = r.random() < 0.5
                self._condition(
                    second,
                    born,
                    visit if prior else self._later(visit),
                    conditions,
                    history,
                    procedures,
                    clinic,
                    prior=prior,
                )

        consented = visit
        withdrawn = None
        if r.random() < 0.025:
            withdrawn = min(consented + _days(r.randint(14, 900)), today)
        consent = SynthConsent(r.choice(CONSENT_VERSIONS), consented, withdrawn)

        history.sort(key=lambda h: (h.started_on, h.condition))
        procedures.sort(key=lambda p: (p.performed_on, p.condition))
        episodes = self.outcomes.episodes(conditions, procedures, consent, bool(email))
        return SynthPatient(
            clinic=clinic,
            record_number=record_number(self.seed, index),
            given_name=given,
            family_name=family,
            date_of_birth=born,
            sex=sex,
            email=email,
            phone=phone,
            height_cm=_dec(height, 1) if measured else None,
            weight_kg=_dec(weight, 1) if measured else None,
            activity_level=profile.activity.pick(r),
            consent=consent,
            conditions=tuple(conditions),
            history=tuple(history),
            procedures=tuple(procedures),
            episodes=episodes,
        )

    def _later(self, visit: dt.date) -> dt.date:
        """A later visit for a second problem (never after today)."""
        return min(visit + _days(int(self.r.expovariate(1 / 200))), self.today)

    @staticmethod
    def _first_steroid(procedures: list[SynthProcedure], history: list[SynthHistory]) -> dt.date | None:
        dates = [p.performed_on for p in procedures if any(i.kind == "steroid" for i in p.injectates)]
        dates += [h.started_on for h in history if h.treatment == "steroid-injection"]
        return min(dates) if dates else None

    # -- one condition, with its history and procedures

    def _condition(
        self,
        code: str,
        born: dt.date,
        visit: dt.date,
        conditions: list[SynthCondition],
        history: list[SynthHistory],
        procedures: list[SynthProcedure],
        clinic: str,
        *,
        prior: bool,
        side: str = "",
    ) -> None:
        """Add one condition first seen at ``visit`` (``prior``: with onset before the visit)."""
        r = self.r
        today = self.today
        profile = PROFILES[code]
        site = profile.sites.pick(r)
        if side:
            laterality = side
        elif self.bilateral[code] and r.random() < profile.bilateral:
            laterality = "bilateral"
        else:
            laterality = "right" if r.random() < 0.52 else "left"
        episode = ""
        qualifiers: tuple[str, ...] = ()
        low, high = profile.onset_days
        if self.seventh[code]:
            episode = _EPISODE.pick(r)
            if code == "ankle-sprain":
                low, high = {"A": (1, 30), "D": (20, 180), "S": (180, 3000)}[episode]
        elif self.findings[code] and r.random() < 0.5:
            qualifiers = (r.choice(self.findings[code]),)
            episode = _EPISODE.pick(r)
        duration = int(low * (high / low) ** r.random()) if prior else 0
        adult = born + _days(int(12 * 365.25))
        onset = max(visit - _days(duration), adult, born)
        if onset > visit:
            onset = visit
        index = len(conditions)

        # What was tried before the first visit (between onset and the visit).
        if prior:
            for treatment in _sample(r, profile.history, _HISTORY_COUNT.pick(r)):
                history.append(self._history(index, treatment, onset, visit, laterality, born))

        # The procedures done here, from the visit on.
        last = onset
        steps = _plan(r, code, site)
        when = visit
        series = 0
        for procedure_code, (gap_low, gap_high), what, target in steps:
            when = when + _days(r.randint(gap_low, gap_high))
            if when > today:
                break
            series = series + 1 if what == _ALCOHOL else series
            procedures.append(
                self._procedure(
                    index,
                    procedure_code,
                    when,
                    laterality,
                    target or site,
                    what,
                    code,
                    clinic,
                    series,
                )
            )
            last = when

        status, resolved = "active", None
        if r.random() < 0.3 and (today - last).days > 90:
            resolved = min(last + _days(r.randint(30, 365)), today)
            status = "resolved"
        conditions.append(
            SynthCondition(code, laterality, site, episode, qualifiers, onset, status, resolved)
        )

    def _wasting(
        self,
        born: dt.date,
        conditions: list[SynthCondition],
        history: list[SynthHistory],
        procedures: list[SynthProcedure],
        clinic: str,
    ) -> None:
        """Foot-muscle wasting after a steroid injection for a neuroma (with its T38.0X5- code)."""
        r = self.r
        steroid = self._first_steroid(procedures, history)
        if steroid is None:
            return
        onset = steroid + _days(r.randint(30, 150))
        if onset > self.today:
            return
        neuroma = conditions[0]
        side = neuroma.laterality if neuroma.laterality != "bilateral" else r.choice(("left", "right"))
        site = {
            "im-space-2": "interossei-2",
            "im-space-3": "interossei-3",
            "im-space-4": "interossei-4",
        }.get(neuroma.site, "interossei-3")
        index = len(conditions)
        episode = r.choice(("A", "D", "S", "S"))
        last = onset
        when = onset
        if r.random() < 0.5:  # ultrasound-guided platelet lysate
            when = onset + _days(r.randint(14, 120))
            if when <= self.today:
                procedures.append(
                    self._procedure(
                        index,
                        "prp-injection",
                        when,
                        side,
                        site,
                        _LYSATE,
                        "foot-muscle-wasting",
                        clinic,
                        0,
                    )
                )
                last = when
        status, resolved = "active", None
        if r.random() < 0.3 and (self.today - last).days > 120:
            resolved = min(last + _days(r.randint(60, 365)), self.today)
            status = "resolved"
        conditions.append(
            SynthCondition(
                "foot-muscle-wasting",
                side,
                site,
                episode,
                ("steroid-induced",),
                onset,
                status,
                resolved,
            )
        )

    def _history(
        self,
        index: int,
        treatment: str,
        onset: dt.date,
        visit: dt.date,
        laterality: str,
        born: dt.date,
    ) -> SynthHistory:
        r = self.r
        span = (visit - onset).days
        started = onset + _days(r.randint(0, span)) if span > 0 else onset
        precision = _PRECISION.pick(r)
        if precision == "month":
            rounded = started.replace(day=1)
        elif precision == "year":
            rounded = started.replace(month=1, day=1)
        else:
            rounded = started
        if rounded < onset or rounded < born:
            precision, rounded = "day", started
        category = _TREATMENT_CATEGORY.get(treatment, "conservative")
        response = _RESPONSE[category].pick(r)
        relief = None
        if response == "partial":
            relief = r.randint(1, 26)
        elif response == "full" and r.random() < 0.7:
            relief = r.randint(4, 104)
        provider = r.choice(_PROVIDERS[category])
        return SynthHistory(index, treatment, rounded, precision, laterality, provider, response, relief)

    def _procedure(
        self,
        index: int,
        code: str,
        when: dt.date,
        laterality: str,
        site: str,
        what: str,
        condition: str,
        clinic: str,
        session: int,
    ) -> SynthProcedure:
        r = self.r
        if laterality == "bilateral":
            laterality = "left" if r.random() < 0.5 else "right"
        clinicians = self.clinicians[clinic]
        events: tuple[SynthAdverseEvent, ...] = ()
        if r.random() < 0.03:
            kind = _sample(r, _adverse_kinds(what, code, condition), 1)[0]
            onset = min(when + _days(int(r.expovariate(1 / 4))), self.today)
            resolved = None
            if r.random() < 0.75:
                end = onset + _days(r.randint(1, 90))
                resolved = end if end <= self.today else None
            events = (SynthAdverseEvent(kind, _SEVERITY.pick(r), _RELATEDNESS.pick(r), onset, resolved),)
        return SynthProcedure(
            condition=index,
            procedure_type=code,
            performed_on=when,
            laterality=laterality,
            site=site,
            image_guidance=self.guidance[code],
            candidacy=_CANDIDACY.pick(r),
            clinician=r.choice(clinicians) if clinicians else "",
            injectates=_injectates(r, what, site, session),
            adverse_events=events,
        )


# --------------------------------------------------------------------------- questionnaire answers

#: Item patterns: answers at one level spread over the items in this many ways.
PATTERNS = 6


@dataclass(frozen=True)
class _Group:
    """The items of one scale that an answer level is spread over."""

    scale: str
    positions: tuple[int, ...]  # item positions in the instrument
    values: tuple[tuple[int, ...], ...]  # per item: its numeric answers, from worst to best
    points: int  # steps from all-worst to all-best over the group's items


def _best_is_high(instrument: core_instruments.Instrument, scale: str, positions: Sequence[int]) -> bool:
    """Whether the highest answer of these items is the best one, as the scale's rule scores it.

    FAAM and LEFS code "no difficulty" 4, FAOS codes "no problem" 0 and scores
    100 minus the percentage: scoring both extremes says which way is up.
    """
    items = instrument.items
    target = instrument.scales[scale]

    def value(high: bool) -> float | None:
        answers: list[Answer] = [None] * len(items)
        for i in positions:
            answers[i] = items[i].high if high else items[i].low
        return scoring.score(instrument, answers).scales[scale].value

    low, high = value(False), value(True)
    if low is None or high is None or low == high:
        return target.higher_is_better
    return (high > low) == target.higher_is_better


@cache
def _groups(code: str) -> tuple[_Group, ...]:
    instrument = core_instruments.instrument(code)
    where = {item.link_id: i for i, item in enumerate(instrument.items)}
    taken: set[int] = set()
    groups = []
    for scale in instrument.scales.values():
        positions = tuple(where[link] for link in scale.items if where[link] not in taken)
        if not positions:
            continue  # a composite scale (FFI total) over items its subscales already hold
        taken.update(positions)
        best_high = _best_is_high(instrument, scale.code, positions)
        values = tuple(tuple(sorted(instrument.items[i].values, reverse=not best_high)) for i in positions)
        groups.append(_Group(scale.code, positions, values, sum(len(v) - 1 for v in values)))
    return tuple(groups)


def answers_at(code: str, level: float | Mapping[str, float], pattern: int = 0) -> tuple[Answer, ...]:
    """Answers to every item of instrument ``code`` putting each scale at ``level`` of its range.

    ``level`` runs from 0 (the worst answer to every item) to 1 (the best),
    whichever way the instrument codes its answers; a mapping gives a level
    per scale (FAOS: symptoms, pain, adl, sport, qol). ``pattern`` (0 to
    :data:`PATTERNS` − 1) chooses one of a few ways of spreading the same
    total over the items, so patients at one level do not all answer alike.
    Deterministic, valid by construction, and cached: the same arguments
    give the same (shared) tuple.
    """
    groups = _groups(code)
    targets = []
    for group in groups:
        if isinstance(level, int | float):
            value = level
        elif group.scale in level:
            value = level[group.scale]
        else:
            raise Invalid(f"No level for scale {group.scale!r} of {code}.", "level")
        targets.append(round(min(max(value, 0.0), 1.0) * group.points))
    return _spread(code, tuple(targets), pattern % PATTERNS)


@cache
def _spread(code: str, targets: tuple[int, ...], pattern: int) -> tuple[Answer, ...]:
    groups = _groups(code)
    answers: list[Answer] = [None] * len(core_instruments.instrument(code).items)
    for group, target in zip(groups, targets, strict=True):
        n = len(group.positions)
        tops = [len(v) - 1 for v in group.values]
        share = target / group.points if group.points else 0.0
        steps = [int(share * top) for top in tops]
        rest = target - sum(steps)
        i = (pattern * 7) % n
        while rest > 0:
            if steps[i] < tops[i]:
                steps[i] += 1
                rest -= 1
            i = (i + 1) % n
        for k in range(pattern):  # move a point from one item to another: same total, other profile
            a, b = (pattern * 5 + 3 * k) % n, (pattern * 3 + 7 * k + 1) % n
            if a != b and steps[a] > 0 and steps[b] < tops[b]:
                steps[a] -= 1
                steps[b] += 1
        for position, values, step in zip(group.positions, group.values, steps, strict=True):
            answers[position] = values[step]
    return tuple(answers)


# --------------------------------------------------------------------------- follow-up

#: Share of patients answering each time point (the marginal rate aimed at).
RESPONSE_RATES: Mapping[str, float] = {
    "baseline": 0.85,
    "1m": 0.70,
    "3m": 0.60,
    "6m": 0.50,
    "12m": 0.40,
    "24m": 0.30,
    "36m": 0.30,
}
#: How much likelier a patient who answered the time point before answers this one (risk ratio).
LOYALTY = 1.6

_CHANNEL = {"invitation": "email", "reminder": "email", "phone-call": "phone", "letter": "letter"}
#: What made a patient answer, by weight ("clinic": on paper at the visit of the index treatment).
_TRIGGER = {"invitation": 60.0, "reminder": 22.0, "phone-call": 10.0, "letter": 8.0, "clinic": 35.0}
#: Escalation: below the first share, email only; below the second, a phone call too; else a letter too.
_ESCALATION = (0.35, 0.6)
_PHONE_OUTCOMES = _Table(
    [("no-answer", 35), ("left-message", 30), ("reached", 25), ("wrong-number", 5), ("declined", 5)]
)
#: Baseline function per instrument: mean and spread of the level (0 worst … 1 best).
_BASELINE = {
    "sane": (0.45, 0.15),
    "faam-adl": (0.62, 0.14),
    "faam-sports": (0.38, 0.17),
    "lefs": (0.55, 0.14),
    "faos": (0.52, 0.14),
    "cait": (0.42, 0.15),
}
_FAOS_OFFSETS = {"symptoms": 0.05, "pain": 0.02, "adl": 0.08, "sport": -0.15, "qol": -0.1}
#: Courses of improvement after each kind of index treatment, by weight.
_COURSES = {
    "regenerative": _Table([("durable", 50), ("none", 30), ("relapse", 20)]),
    "steroid": _Table([("fading", 65), ("durable", 15), ("none", 20)]),
    "surgery": _Table([("surgery", 75), ("none", 15), ("relapse", 10)]),
}
_REGENERATIVE = frozenset({"prp", "platelet-lysate", "bmc", "dextrose"})


def _conditional_rates(plan: core_schedule.Schedule) -> dict[str, tuple[float, float]]:
    """Per time point: the chance to answer after a missed and after an answered time point.

    Chosen so that the overall rate is :data:`RESPONSE_RATES` when the time
    point before was answered at its own rate, with answering :data:`LOYALTY`
    times likelier after an answer.
    """
    rates = {}
    previous: float | None = None
    for point in plan.timepoints:
        rate = RESPONSE_RATES.get(point.code, 0.3)
        if previous is None:
            rates[point.code] = (rate, rate)
        else:
            after_missed = rate / (previous * LOYALTY + 1 - previous)
            rates[point.code] = (after_missed, min(after_missed * LOYALTY, 0.97))
        previous = rate
    return rates


def _toward(base: float, gain: float) -> float:
    """A level ``gain`` of the way from ``base`` to the best (or, negative, to the worst)."""
    level = base + (1 - base) * gain if gain >= 0 else base * (1 + gain)
    return min(max(level, 0.0), 1.0)


def _round5(value: float) -> int:
    return 5 * round(value / 5)


class _Curve(NamedTuple):
    """A latent improvement curve: 0 at the index, 1 for complete recovery, below 0 for worse."""

    course: str
    plateau: float
    tau: float  # months to about two thirds of the plateau
    fade: float  # months for relief to fade (fading, relapse)
    relapse: float  # month relapse starts

    def at(self, months: float) -> float:
        rise = self.plateau * (1 - exp(-months / self.tau))
        if self.course == "fading":
            return self.plateau * (1 - exp(-months / 0.4)) * exp(-months / self.fade)
        if self.course == "relapse" and months > self.relapse:
            return rise * exp(-(months - self.relapse) / self.fade)
        if self.course == "surgery":
            return rise - 0.35 * exp(-months / 1.2)  # worse at first: recovering from the operation
        return rise


class _Outcomes:
    """Episodes, follow-ups, answers and contacts, from a stream of their own."""

    def __init__(self, seed: int, today: dt.date, cat: Catalog) -> None:
        self.r = _Random(f"{seed}:follow-up")
        self.today = today
        self.plan = plan = core_schedule.schedule()
        library = core_instruments.library()
        self.at_baseline = {code: i.baseline for code, i in library.items()}
        self.surgery = {code: p.category == "surgery" for code, p in cat.procedures.items()}
        self.rates = _conditional_rates(plan)
        self.ladder = [
            (kind, _CHANNEL[kind], _days(plan.contact_days[kind])) for kind in core_schedule.CONTACT_KINDS
        ]
        self._windows: dict[dt.date, list[core_schedule.Window]] = {}
        self._instruments: dict[tuple[str, str], tuple[str, ...]] = {}
        self._points = {
            code: tuple((g.scale, g.points) for g in _groups(code))
            for codes in plan.instruments.values()
            for code in codes
        }

    def windows(self, index: dt.date) -> list[core_schedule.Window]:
        windows = self._windows.get(index)
        if windows is None:
            windows = self._windows[index] = self.plan.windows(index)
        return windows

    def instruments(self, condition: str, timepoint: str) -> tuple[str, ...]:
        key = (condition, timepoint)
        codes = self._instruments.get(key)
        if codes is None:
            codes = self._instruments[key] = self.plan.instruments_for(
                condition, timepoint, self.at_baseline.__getitem__
            )
        return codes

    # -- which treatments are index treatments

    def _kind(self, p: SynthProcedure) -> str:
        kinds = {i.kind for i in p.injectates}
        if "steroid" in kinds:
            return "steroid"
        if kinds & _REGENERATIVE:
            return "regenerative"
        return "surgery" if self.surgery[p.procedure_type] else ""

    def indexes(self, procedures: Sequence[SynthProcedure]) -> list[tuple[int, str]]:
        """(position, kind) of each index treatment, per condition in date order.

        The first regenerative or steroid injection of a condition is its
        index treatment, except that dextrose primers lead up to the
        bone-marrow concentrate that follows within two months (the ankle
        course); a later surgery starts an episode of its own.
        """
        by_condition: dict[int, list[int]] = {}
        for position, p in enumerate(procedures):
            by_condition.setdefault(p.condition, []).append(position)
        chosen: list[tuple[int, str]] = []
        for positions in by_condition.values():
            picks: list[tuple[int, str]] = []
            for position in positions:
                kind = self._kind(procedures[position])
                if kind in ("regenerative", "steroid"):
                    first = procedures[position]
                    if {i.kind for i in first.injectates} & _REGENERATIVE == {"dextrose"}:
                        for later in positions:
                            p = procedures[later]
                            if 0 < (p.performed_on - first.performed_on).days <= 60 and any(
                                i.kind == "bmc" for i in p.injectates
                            ):
                                position = later
                                break
                    picks.append((position, kind))
                    break
            picks += [(x, "surgery") for x in positions if self.surgery[procedures[x].procedure_type]]
            picks.sort(key=lambda pick: (procedures[pick[0]].performed_on, pick[0]))
            last: dt.date | None = None
            for position, kind in picks:
                day = procedures[position].performed_on
                if last is None or day > last:  # a new index treatment comes after the one before
                    chosen.append((position, kind))
                    last = day
        return chosen

    # -- episodes

    def episodes(
        self,
        conditions: Sequence[SynthCondition],
        procedures: list[SynthProcedure],
        consent: SynthConsent,
        email: bool,
    ) -> tuple[SynthEpisode, ...]:
        """The episodes of one patient; marks their index treatments in ``procedures``."""
        indexes = self.indexes(procedures)
        if not indexes:
            return ()
        pattern = self.r.randint(0, PATTERNS - 1)
        for position, _ in indexes:
            procedures[position] = _replace_index(procedures[position])
        withdrawn = consent.withdrawn_on
        result = []
        for k, (position, kind) in enumerate(indexes):
            procedure = procedures[position]
            index = procedure.performed_on
            ended, reason = None, ""
            for later, _ in indexes[k + 1 :]:
                if procedures[later].condition == procedure.condition:
                    ended, reason = procedures[later].performed_on, "new-index"
                    break
            if withdrawn is not None and withdrawn >= index and (ended is None or withdrawn < ended):
                ended, reason = withdrawn, "withdrawn"
            # Recorded after the patient withdrew: followed, but never contacted (not consenting).
            reachable = withdrawn is None or withdrawn >= index
            result.append(
                self._episode(
                    procedure.condition,
                    position,
                    index,
                    kind,
                    conditions[procedure.condition].condition_type,
                    ended,
                    reason,
                    consent.consented_on,
                    email,
                    pattern,
                    reachable,
                )
            )
        return tuple(result)

    def _curve(self, kind: str) -> _Curve:
        uniform = self.r.uniform
        course = _COURSES[kind].pick(self.r)
        if course == "durable":
            return _Curve(course, uniform(0.55, 0.95), uniform(0.8, 3.0), 0.0, 0.0)
        if course == "none":
            return _Curve(course, uniform(-0.15, 0.25), uniform(0.5, 2.0), 0.0, 0.0)
        if course == "relapse":
            return _Curve(course, uniform(0.5, 0.9), uniform(0.5, 2.0), uniform(3, 8), uniform(3, 10))
        if course == "fading":
            return _Curve(course, uniform(0.5, 0.85), 1.0, uniform(1.5, 3.5), 0.0)
        return _Curve(course, uniform(0.6, 0.95), uniform(2.0, 4.0), 0.0, 0.0)

    def _episode(
        self,
        condition: int,
        position: int,
        index: dt.date,
        kind: str,
        code: str,
        ended: dt.date | None,
        reason: str,
        consented: dt.date,
        email: bool,
        pattern: int,
        reachable: bool,
    ) -> SynthEpisode:
        r = self.r
        random_ = r.random
        today = self.today
        curve = self._curve(kind)
        pain = min(max(round(6.4 + _noise(r, 1.5)), 3), 10)
        base = {}
        for instrument in self.plan.instruments.get(code, self.plan.instruments["default"]):
            mean, sd = _BASELINE.get(instrument, (0.5, 0.15))
            base[instrument] = min(max(mean + _noise(r, sd), 0.05), 0.9)
        rates = self.rates
        answered_before = False
        follow_ups = []
        for point, window in zip(self.plan.timepoints, self.windows(index), strict=True):
            tp = point.code
            if ended is not None and window.due >= ended:
                follow_ups.append(SynthFollowUp(tp, "cancelled"))
                continue
            if window.opens > today:
                follow_ups.append(SynthFollowUp(tp, "pending"))
                continue
            ladder: list[tuple[str, str, dt.date]] = []
            if reachable:
                start = window.opens if window.opens > consented else consented
                closes = window.closes
                # Emails go to everyone; the coordinator phones some, and writes to some of those
                # (and always to a patient without an email address).
                x = random_() if email else 1.0
                steps = self.ladder if x >= _ESCALATION[0] else self.ladder[:2]
                if _ESCALATION[0] <= x < _ESCALATION[1]:
                    steps = self.ladder[:3]
                for contact, channel, offset in steps:
                    day = start + offset
                    if day > closes:
                        break
                    ladder.append((contact, channel, day))
            after_missed, after_answered = rates[tp]
            # Asked only once in the registry: a window closed before consent has nobody to answer it.
            askable = reachable and consented <= window.closes
            answering = askable and random_() < (after_answered if answered_before else after_missed)
            answered_before = answering
            trigger, day = self._answer_day(window, ladder, email, point) if answering else ("", None)
            if day is not None and ended is not None and day >= ended:
                trigger, day = "", None
            contacts = self._contacts(ladder, trigger, day, window, ended, email) if ladder else ()
            if day is not None and day <= today:
                paper = trigger in ("clinic", "letter") or (trigger == "phone-call" and random_() < 0.5)
                follow_ups.append(
                    SynthFollowUp(
                        tp,
                        "completed",
                        day,
                        "paper" if paper else "patient",
                        self._responses(code, tp, point.months, curve, pain, base, pattern),
                        contacts,
                    )
                )
            else:
                open_ = ended is None and window.accepts_until >= today
                follow_ups.append(SynthFollowUp(tp, "due" if open_ else "missed", contacts=contacts))
        return SynthEpisode(condition, position, index, tuple(follow_ups), ended, reason)

    def _answer_day(
        self,
        window: core_schedule.Window,
        ladder: Sequence[tuple[str, str, dt.date]],
        email: bool,
        point: core_schedule.TimePoint,
    ) -> tuple[str, dt.date | None]:
        """What made the patient answer, and the day they did."""
        r = self.r
        options = [(kind, day) for kind, channel, day in ladder if email or channel != "email"]
        baseline = point.code == "baseline"
        if baseline:  # also on paper, in the clinic, on the day of the treatment
            options.append(("clinic", window.closes))
        if not options:
            return "", None
        x = r.random() * sum(_TRIGGER[kind] for kind, _ in options)
        for kind, day in options:  # noqa: B007 (the pick is the pair the loop stops at)
            x -= _TRIGGER[kind]
            if x < 0:
                break
        if kind == "clinic":
            return kind, day
        day = min(day + _DELAYS[min(int(r.expovariate(1 / 1.5)), 10)], window.closes)
        if baseline and point.grace_days and r.random() < 0.05:  # sent in after the index day: flagged
            day = window.closes + _days(r.randint(1, point.grace_days))
        return kind, day

    def _contacts(
        self,
        ladder: Sequence[tuple[str, str, dt.date]],
        trigger: str,
        answered_on: dt.date | None,
        window: core_schedule.Window,
        ended: dt.date | None,
        email: bool,
    ) -> tuple[SynthContact, ...]:
        """The contacts made for one follow-up: each step of the ladder whose day came before an answer."""
        r = self.r
        today = self.today
        answered = answered_on if answered_on is not None and answered_on <= today else None
        contacts = []
        for kind, channel, day in ladder:
            if day > today or (ended is not None and day >= ended):
                break
            # Made before the answer came (the invitation, and the contact that brought it, that day).
            if answered_on is not None and (
                day > answered_on or (day == answered_on and kind not in (trigger, "invitation"))
            ):
                break
            if channel == "email":
                if not email:
                    contacts.append(SynthContact(kind, channel, day, "failed", "no-email", day))
                elif r.random() < 0.01:
                    contacts.append(SynthContact(kind, channel, day, "failed", "send-error", day))
                else:
                    contacts.append(SynthContact(kind, channel, day, "sent", "sent", day))
                continue
            if kind == trigger:
                outcome = "reached" if kind == "phone-call" else "letter-sent"
                contacts.append(SynthContact(kind, channel, day, "done", outcome, day))
                continue
            handled = day + _DELAYS[r.randint(0, 3)] if r.random() < 0.7 else None
            if (
                handled is not None
                and handled <= today
                and handled <= window.accepts_until
                and (answered is None or handled < answered)
                and (ended is None or handled < ended)
            ):
                outcome = _PHONE_OUTCOMES.pick(r) if kind == "phone-call" else "letter-sent"
                contacts.append(SynthContact(kind, channel, day, "done", outcome, handled))
            elif answered is not None:
                contacts.append(SynthContact(kind, channel, day, "cancelled", "answered", answered))
            elif ended is not None:
                contacts.append(SynthContact(kind, channel, day, "cancelled", "episode-ended", ended))
            elif window.accepts_until < today:
                closed = window.accepts_until + _DELAYS[1]
                contacts.append(SynthContact(kind, channel, day, "cancelled", "window-closed", closed))
            else:
                contacts.append(SynthContact(kind, channel, day, "open"))  # on the worklist today
        return tuple(contacts)

    def _responses(
        self,
        code: str,
        timepoint: str,
        months: int,
        curve: _Curve,
        pain: int,
        base: Mapping[str, float],
        pattern: int,
    ) -> tuple[SynthAnswers, ...]:
        """The answers to every questionnaire of a time point, from the episode's curve."""
        r = self.r
        gain = 0.0 if months == 0 else min(max(curve.at(months) + _noise(r, 0.06), -0.6), 1.0)
        result = []
        for instrument in self.instruments(code, timepoint):
            if instrument == "nprs":
                value = pain * (1 - gain) if gain >= 0 else pain + (10 - pain) * -gain
                answers: tuple[Answer, ...] = _SINGLE[min(max(round(value + _noise(r, 0.5)), 0), 10)]
            elif instrument == "percent-improvement":
                value = 100 * gain + _noise(r, 7)
                rounded = _round5(value) if r.random() < 0.8 else round(value)
                answers = _SINGLE[min(max(rounded, -100), 100)]
            elif instrument == "sane":
                value = 100 * _toward(base["sane"], gain) + _noise(r, 4)
                answers = _SINGLE[min(max(_round5(value), 0), 100)]
            else:
                level = _toward(base.get(instrument, 0.5), gain + _noise(r, 0.04))
                if instrument == "faos":
                    targets = tuple(
                        round(min(max(level + _FAOS_OFFSETS[scale], 0.0), 1.0) * points)
                        for scale, points in self._points[instrument]
                    )
                else:
                    targets = tuple(round(level * points) for _, points in self._points[instrument])
                answers = _spread(instrument, targets, pattern)
            result.append(SynthAnswers(instrument, answers))
        return tuple(result)


def _noise(r: random.Random, sd: float) -> float:
    """Roughly normal noise of spread ``sd`` (three uniforms: quicker than ``gauss``, and bounded)."""
    return (r.random() + r.random() + r.random() - 1.5) * 2 * sd


_DELAYS = tuple(dt.timedelta(days=n) for n in range(11))
_SINGLE = {value: (value,) for value in range(-100, 101)}


def _replace_index(p: SynthProcedure) -> SynthProcedure:
    return SynthProcedure(
        p.condition,
        p.procedure_type,
        p.performed_on,
        p.laterality,
        p.site,
        p.image_guidance,
        p.candidacy,
        p.clinician,
        p.injectates,
        p.adverse_events,
        True,
    )


def generate(
    seed: int,
    n: int,
    clinics: Sequence[str],
    today: dt.date,
    clinicians: Mapping[str, Sequence[str]] | None = None,
    *,
    cat: Catalog | None = None,
) -> Iterator[SynthPatient]:
    """Yield ``n`` synthetic patients, spread over ``clinics`` in turn.

    ``clinicians`` maps a clinic slug to the usernames of its clinicians;
    procedures name one of them (none when the clinic has none). ``today``
    is the latest date any record may carry.
    """
    if n < 0:
        raise Invalid("The number of patients cannot be negative.", "patients")
    if not clinics:
        raise Invalid("Synthetic patients need at least one clinic.", "clinic")
    if len(set(clinics)) != len(clinics):
        raise Invalid("A clinic is named twice.", "clinic")
    builder = _Builder(seed, clinics, clinicians or {}, today, cat or catalog())
    for index in range(1, n + 1):
        yield builder.patient(index)


# --------------------------------------------------------------------------- checking


def check_patient(patient: SynthPatient, today: dt.date, cat: Catalog | None = None) -> None:
    """Run every core rule on one generated patient; raise :class:`Invalid` at the first failure.

    Used by the tests (the writer trusts the generator and does not re-check).
    """
    cat = cat or catalog()
    born = patient.date_of_birth
    if patient.sex not in SEXES:
        raise Invalid(f"Unknown sex {patient.sex!r}.", "sex")
    if patient.activity_level not in ACTIVITY_LEVELS:
        raise Invalid(f"Unknown activity level {patient.activity_level!r}.", "activity_level")
    rules.birth_date(born, today)
    rules.within(patient.height_cm, *anthropometry.HEIGHT_CM, "height_cm", "height", "cm")
    rules.within(patient.weight_kg, *anthropometry.WEIGHT_KG, "weight_kg", "weight", "kg")

    consent = patient.consent
    rules.event_date(consent.consented_on, "consented_on", "consent date", born=born, today=today)
    if consent.withdrawn_on is not None:
        rules.event_date(consent.withdrawn_on, "withdrawn_on", "withdrawal date", born=born, today=today)
    rules.not_before(consent.withdrawn_on, consent.consented_on, "withdrawn_on", "Withdrawn before consent.")

    for c in patient.conditions:
        condition = cat.condition(c.condition_type)
        resolve_condition_codes(
            condition, c.laterality, site=c.site, episode=c.episode, qualifiers=c.qualifiers
        )
        rules.event_date(c.onset_date, "onset_date", "onset date", born=born, today=today)
        if c.resolved_on is not None:
            rules.event_date(c.resolved_on, "resolved_on", "resolution date", born=born, today=today)
        rules.not_before(c.resolved_on, c.onset_date, "resolved_on", "Resolved before onset.")
        if c.status not in ("active", "resolved") or (c.resolved_on is not None) != (c.status == "resolved"):
            raise Invalid("A resolved condition has a resolution date, an active one none.", "status")
        for other in patient.conditions:
            if other is c or other.status != "active" or c.status != "active":
                continue
            overlap = "bilateral" in (c.laterality, other.laterality) or c.laterality == other.laterality
            if overlap and other.condition_type in condition.excludes:
                raise Invalid(f"{c.condition_type} and {other.condition_type} on one side.", "condition_type")

    for h in patient.history:
        if h.treatment not in cat.treatments:
            raise Invalid(f"Unknown treatment {h.treatment!r}.", "treatment")
        rules.event_date(h.started_on, "started_on", "treatment date", born=born, today=today)
        if h.laterality:
            rules.procedure_side(h.laterality, patient.conditions[h.condition].laterality)
        if h.response not in RESPONSES:
            raise Invalid(f"Unknown response {h.response!r}.", "response")
        if h.relief_weeks and h.response == "none":
            raise Invalid("Relief without response.", "relief_weeks")
        if h.date_precision not in ("day", "month", "year"):
            raise Invalid(f"Unknown date precision {h.date_precision!r}.", "date_precision")

    for p in patient.procedures:
        procedure = cat.procedure(p.procedure_type)
        condition = patient.conditions[p.condition]
        rules.event_date(p.performed_on, "performed_on", "procedure date", born=born, today=today)
        rules.not_before(p.performed_on, condition.onset_date, "performed_on", "Procedure before onset.")
        rules.procedure_side(p.laterality, condition.laterality)
        if p.laterality not in ("left", "right"):
            raise Invalid("A procedure is done on one side.", "laterality")
        if p.site not in cat.sites:
            raise Invalid(f"Unknown site {p.site!r}.", "site")
        if p.candidacy not in CANDIDACY:
            raise Invalid(f"Unknown candidacy {p.candidacy!r}.", "candidacy")
        for i in p.injectates:
            if i.kind not in procedure.injectates:
                raise Invalid(f"A {procedure.code} does not record {i.kind}.", "kind")
            drug_kind = cat.drugs[i.drug].group if i.drug else None
            injectates.validate(i.kind, i.values(), drug_kind=drug_kind)
            if i.activation and i.activation not in cat.activations:
                raise Invalid(f"Unknown activation {i.activation!r}.", "activation")
        for e in p.adverse_events:
            if e.kind not in cat.adverse_events:
                raise Invalid(f"Unknown adverse event {e.kind!r}.", "kind")
            rules.event_date(e.onset_date, "onset_date", "onset date", born=None, today=today)
            rules.not_before(
                e.onset_date, p.performed_on, "onset_date", "Adverse event before its procedure."
            )
            rules.not_before(e.resolved_on, e.onset_date, "resolved_on", "Resolved before it began.")
            if e.resolved_on is not None and e.resolved_on > today:
                raise Invalid("The resolution date is in the future.", "resolved_on")
            if e.severity not in SEVERITIES or e.relatedness not in RELATEDNESS:
                raise Invalid("Unknown severity or relatedness.", "severity")

    check_follow_up(patient, today)


FOLLOW_UP_STATES = ("completed", "missed", "due", "pending", "cancelled")
CONTACT_STATES = {
    "email": {("sent", "sent"), ("failed", "no-email"), ("failed", "send-error")},
    "task": {
        ("done", "reached"),
        ("done", "no-answer"),
        ("done", "left-message"),
        ("done", "wrong-number"),
        ("done", "declined"),
        ("done", "letter-sent"),
        ("cancelled", "answered"),
        ("cancelled", "window-closed"),
        ("cancelled", "episode-ended"),
        ("open", ""),
    },
}


def check_follow_up(patient: SynthPatient, today: dt.date) -> None:
    """Check one patient's episodes, follow-ups, answers and contacts; :class:`Invalid` at the first fault."""
    plan = core_schedule.schedule()
    library = core_instruments.library()
    consent = patient.consent
    indexes = {e.procedure for e in patient.episodes}
    for position, p in enumerate(patient.procedures):
        if p.is_index != (position in indexes):
            raise Invalid("An index treatment without its episode, or the other way round.", "is_index")
    last: dict[int, dt.date] = {}
    for e in patient.episodes:
        procedure = patient.procedures[e.procedure]
        if procedure.condition != e.condition or procedure.performed_on != e.index_date:
            raise Invalid("An episode does not start at its index treatment.", "index_date")
        if e.condition in last and e.index_date <= last[e.condition]:
            raise Invalid("A new index treatment must come after the one before.", "index_date")
        last[e.condition] = e.index_date
        if (e.ended_on is None) != (e.end_reason == "") or e.end_reason not in ("", "new-index", "withdrawn"):
            raise Invalid("An ended episode says why, and only then.", "end_reason")
        if e.ended_on is not None and not e.index_date <= e.ended_on <= today:
            raise Invalid("An episode ends between its index date and today.", "ended_on")
        code = patient.conditions[e.condition].condition_type
        windows = plan.windows(e.index_date)
        if [f.timepoint for f in e.follow_ups] != [w.timepoint for w in windows]:
            raise Invalid("An episode has one follow-up per time point, in order.", "timepoint")
        for f, window in zip(e.follow_ups, windows, strict=True):
            if f.status not in FOLLOW_UP_STATES:
                raise Invalid(f"Unknown follow-up status {f.status!r}.", "status")
            censored = e.ended_on is not None and window.due >= e.ended_on
            if (f.status == "cancelled") != censored:
                raise Invalid("Only follow-ups due after their episode ended are cancelled.", "status")
            if not censored and (f.status == "pending") != (window.opens > today):
                raise Invalid("A follow-up is pending exactly until its window opens.", "status")
            if f.status == "due" and (window.accepts_until < today or e.ended_on is not None):
                raise Invalid("A due follow-up is open today.", "status")
            if (f.status == "completed") != (f.collected_on is not None) or bool(f.responses) != (
                f.collected_on is not None
            ):
                raise Invalid("A follow-up is completed exactly when it has answers.", "status")
            if f.collected_on is not None:
                if not max(window.opens, consent.consented_on) <= f.collected_on <= window.accepts_until:
                    raise Invalid("Answers are collected inside their window.", "collected_on")
                if f.collected_on > today or (e.ended_on is not None and f.collected_on >= e.ended_on):
                    raise Invalid(
                        "Answers are collected by today and before the episode ended.", "collected_on"
                    )
                if "late" in window.flags_for(f.collected_on):
                    raise Invalid("Late answers do not complete a follow-up.", "collected_on")
                if f.source not in ("patient", "paper"):
                    raise Invalid(f"Unknown source {f.source!r}.", "source")
                expected = plan.instruments_for(code, f.timepoint, lambda c: library[c].baseline)
                if tuple(a.instrument for a in f.responses) != expected:
                    raise Invalid(
                        "A follow-up is answered with the questionnaires of its time point.", "instrument"
                    )
                for answer_set in f.responses:
                    scoring.validate_answers(library[answer_set.instrument], list(answer_set.answers))
            for c in f.contacts:
                if not consent.consented_on <= c.day <= min(today, window.closes):
                    raise Invalid("A contact is made after consent, by today, inside its window.", "due_at")
                if consent.withdrawn_on is not None and c.day >= consent.withdrawn_on:
                    raise Invalid("No contact after the patient withdrew.", "due_at")
                if f.collected_on is not None and c.day > f.collected_on:
                    raise Invalid("No contact after the answers came in.", "due_at")
                kind = "email" if c.channel == "email" else "task"
                if (c.state, c.outcome) not in CONTACT_STATES[kind]:
                    raise Invalid(f"A {c.kind} cannot be {c.state} with outcome {c.outcome!r}.", "state")
                if (c.finished_on is None) != (c.state == "open"):
                    raise Invalid("A contact is finished unless it is still open.", "finished_at")
            kinds = [c.kind for c in f.contacts]
            if kinds != list(core_schedule.CONTACT_KINDS[: len(kinds)]):
                raise Invalid("Contacts follow the ladder: invitation, reminder, phone call, letter.", "kind")
