"""Forms of the analytics area: the cohort builder and the choice of what a report analyses."""

from __future__ import annotations

from typing import Any

from django import forms

from stride.analytics.models import SavedCohort
from stride.analytics.reports import measure_unit
from stride.clinics import access
from stride.clinics.models import Clinic
from stride.core import analysis, cohorts, injectates
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure
from stride.core import schedule as core_schedule
from stride.core.catalog import LATERALITIES, catalog
from stride.core.errors import Invalid
from stride.core.protocols import protocols
from stride.forms import DateInput


def _named(mapping: Any) -> list[tuple[str, str]]:
    return sorted(((code, item.name) for code, item in mapping.items()), key=lambda pair: pair[1].lower())


def _words(codes: Any) -> list[tuple[str, str]]:
    return [(code, code.replace("-", " ").capitalize()) for code in codes]


def _many(label: str, choices: list[tuple[str, str]], help_text: str = "") -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label,
        choices=choices,
        required=False,
        help_text=help_text,
        widget=forms.SelectMultiple(attrs={"size": min(6, max(2, len(choices)))}),
    )


class CohortForm(forms.Form):
    """A cohort definition: every criterion left empty lets everything through.

    The values of one criterion are alternatives; different criteria must all hold.
    """

    name = forms.CharField(label="Cohort name", max_length=200, required=False)
    description = forms.CharField(label="Notes", required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, clinics: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cat = catalog()
        self.clinic_list = list(clinics)
        self.fields.update(
            {
                "conditions": _many("Condition", _named(cat.conditions)),
                "lateralities": _many("Side", _words(LATERALITIES)),
                "sites": _many("Site", _named({**cat.body_sites, **cat.sites})),
                "procedure_types": _many("Index procedure", _named(cat.procedures)),
                "injectate_kinds": _many("Injectate", _named(cat.injectate_kinds)),
                "leukocytes": _many(
                    "PRP leukocytes", _words(injectates.LEUKOCYTES), "Leukocyte-rich or -poor PRP."
                ),
                "activations": _many("PRP activation", _named(cat.activations)),
                "drugs": _many("Drug", _named(cat.drugs)),
                "protocols": _many(
                    "Protocol", [(p.code, p.name) for p in protocols().values()], "The care plan followed."
                ),
                "prior_treatments": _many(
                    "Tried before the index date", _named(cat.treatments), "E.g. a steroid injection."
                ),
                "sexes": _many("Sex", _words(cohorts.SEXES)),
                "activity_levels": _many("Activity level", _words(cohorts.ACTIVITY_LEVELS)),
                "clinics": _many("Clinic", [(c.slug, c.name) for c in self.clinic_list]),
                "age_min": forms.IntegerField(label="Age from", required=False, min_value=0, max_value=130),
                "age_max": forms.IntegerField(label="Age to", required=False, min_value=0, max_value=130),
                "bmi_min": forms.FloatField(label="BMI from", required=False, min_value=10, max_value=80),
                "bmi_max": forms.FloatField(label="BMI to", required=False, min_value=10, max_value=80),
                "index_from": forms.DateField(label="Index date from", required=False, widget=DateInput()),
                "index_to": forms.DateField(label="Index date to", required=False, widget=DateInput()),
            }
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        raw: dict[str, Any] = {
            name: data[name]
            for name in (
                "conditions",
                "lateralities",
                "sites",
                "procedure_types",
                "injectate_kinds",
                "leukocytes",
                "activations",
                "drugs",
                "protocols",
                "prior_treatments",
                "sexes",
                "activity_levels",
                "clinics",
            )
            if data.get(name)
        }
        for name, low, high in (
            ("age", "age_min", "age_max"),
            ("bmi", "bmi_min", "bmi_max"),
            ("index_dates", "index_from", "index_to"),
        ):
            if data.get(low) is not None or data.get(high) is not None:
                raw[name] = {"min": data.get(low), "max": data.get(high)}
        try:
            data["spec"] = cohorts.parse_spec(raw, clinic_slugs=[c.slug for c in self.clinic_list])
        except Invalid as error:
            field = {
                "age": "age_min",
                "bmi": "bmi_min",
                "index_dates": "index_from",
            }.get(error.field or "", error.field)
            self.add_error(field if field in self.fields else None, error.message)
        return data

    @staticmethod
    def initial_for(spec: cohorts.CohortSpec) -> dict[str, Any]:
        """Form values that show ``spec`` (to edit a saved cohort)."""
        data: dict[str, Any] = {k: list(v) for k, v in spec.to_dict().items() if isinstance(v, list)}
        for name, low, high in (
            ("age", "age_min", "age_max"),
            ("bmi", "bmi_min", "bmi_max"),
            ("index_dates", "index_from", "index_to"),
        ):
            bounds = getattr(spec, name)
            data[low], data[high] = bounds.low, bounds.high
        return data


def measures() -> list[tuple[str, str]]:
    """ "instrument:scale" choices for every scoreable scale, named as reports name them, then every
    image measurement type of the catalog as "img-<type code>:value" ("Imaging — <name> (<unit>)").

    Grades are offered too (their report says means of grades are descriptive); the free types are
    not: a free length or angle measures whatever its note says, a different thing on every image.
    """
    choices = []
    for code, instrument in sorted(core_instruments.library().items(), key=lambda item: item[1].short_name):
        for scale_code, scale in instrument.scales.items():
            name = instrument.short_name
            if len(instrument.scales) > 1:
                name = f"{name} — {scale.name}"
            choices.append((f"{code}:{scale_code}", name))
    for mtype in core_measure.measurement_types().values():
        if not mtype.free:
            choices.append(
                (f"{mtype.instrument_code}:value", f"Imaging — {mtype.name} ({measure_unit(mtype)})")
            )
    return choices


class ReportForm(forms.Form):
    """What a cohort report analyses: which cohorts, which outcome, which event."""

    cohort = forms.ModelMultipleChoiceField(
        label="Cohorts",
        queryset=SavedCohort.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Choose one to describe it, two or more to compare them (the first is the reference).",
    )
    everyone = forms.BooleanField(
        label="All treated patients", required=False, help_text="Every index treatment you can see."
    )
    measure = forms.ChoiceField(label="Outcome", choices=())
    event = forms.ChoiceField(
        label="Durability event",
        choices=[(code, text.capitalize()) for code, text in analysis.EVENTS.items()],
        initial=analysis.DEFAULT_EVENT,
    )
    timepoint = forms.ChoiceField(label="Compare change at", choices=(), initial="6m")
    show_small = forms.BooleanField(
        label="Show groups under the small-cell minimum",
        required=False,
        help_text="Only for clinicians of every clinic in the report; leave off for anything you share.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cohort"].queryset = SavedCohort.objects.visible_to(user)
        self.fields["measure"].choices = measures()
        self.fields["measure"].initial = "nprs:total"
        self.fields["timepoint"].choices = [
            (p.code, p.name) for p in core_schedule.schedule().timepoints if p.code != "baseline"
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("cohort") and not data.get("everyone"):
            raise forms.ValidationError("Choose at least one cohort, or all treated patients.")
        measure = data.get("measure") or ""
        data["instrument"], _, data["scale"] = measure.partition(":")
        return data


def clinics_for(user: Any) -> list[Clinic]:
    return list(access.clinics(user, access.Action.VIEW_AGGREGATES))
