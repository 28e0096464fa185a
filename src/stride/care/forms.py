from __future__ import annotations

from typing import Any

from django import forms
from django.forms import inlineformset_factory

from stride.care.models import (
    AdverseEvent,
    AdverseEventKind,
    Condition,
    ConditionType,
    Drug,
    Injectate,
    Procedure,
    ProcedureType,
    Site,
    TreatmentHistory,
    TreatmentKind,
)
from stride.clinics.models import Role, User
from stride.core.catalog import catalog
from stride.forms import DateInput, StrideModelForm
from stride.patients.models import Patient


def _active(model: Any) -> Any:
    return model.objects.filter(retired=False)


class ConditionForm(StrideModelForm):
    qualifiers = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Findings that add a code",
    )

    class Meta:
        model = Condition
        fields = [
            "condition_type",
            "laterality",
            "site",
            "site_note",
            "episode",
            "qualifiers",
            "onset_date",
            "status",
            "resolved_on",
            "severity_notes",
        ]
        widgets = {
            "onset_date": DateInput(),
            "resolved_on": DateInput(),
            "severity_notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["condition_type"].queryset = _active(ConditionType)
        self.fields["site"].queryset = _active(Site).select_related("body_site")
        self.fields["qualifiers"].choices = sorted(
            {(q.code, q.name) for c in catalog().conditions.values() for q in c.qualifiers}
        )


class TreatmentHistoryForm(StrideModelForm):
    class Meta:
        model = TreatmentHistory
        fields = [
            "condition",
            "treatment",
            "laterality",
            "started_on",
            "date_precision",
            "provider",
            "response",
            "relief_weeks",
            "notes",
        ]
        widgets = {"started_on": DateInput(), "notes": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, patient: Patient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = patient.conditions.select_related("condition_type", "site")
        self.fields["treatment"].queryset = _active(TreatmentKind)


def clinicians_of(patient: Patient) -> Any:
    return User.objects.filter(
        memberships__clinic_id=patient.clinic_id,
        memberships__role__in=[Role.CLINICIAN, Role.ADMIN],
        is_active=True,
    ).distinct()


class ProcedureForm(StrideModelForm):
    class Meta:
        model = Procedure
        fields = [
            "condition",
            "performed_on",
            "procedure_type",
            "clinician",
            "site",
            "target_note",
            "laterality",
            "image_guidance",
            "is_index",
            "candidacy",
            "notes",
        ]
        widgets = {"performed_on": DateInput(), "notes": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, patient: Patient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = patient.conditions.select_related("condition_type", "site")
        self.fields["procedure_type"].queryset = _active(ProcedureType)
        self.fields["clinician"].queryset = clinicians_of(patient)
        self.fields["clinician"].required = True
        self.fields["site"].queryset = _active(Site)


class InjectateForm(StrideModelForm):
    activation = forms.ChoiceField(required=False)

    class Meta:
        model = Injectate
        fields = [
            "kind",
            "drug",
            "dose_mg",
            "volume_ml",
            "concentration_pct",
            "platelet_count",
            "baseline_platelet_count",
            "leukocytes",
            "activation",
            "aspirate_volume_ml",
            "tnc_per_ml",
            "series_number",
            "sites_injected",
            "notes",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["drug"].queryset = _active(Drug)
        self.fields["activation"].choices = [("", "—")] + [
            (a.code, a.name) for a in catalog().activations.values()
        ]


class AdverseEventForm(StrideModelForm):
    class Meta:
        model = AdverseEvent
        fields = ["kind", "description", "onset_date", "severity", "relatedness", "resolved_on"]
        widgets = {"onset_date": DateInput(), "resolved_on": DateInput()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].queryset = _active(AdverseEventKind)


InjectateFormSet = inlineformset_factory(
    Procedure,
    Injectate,
    form=InjectateForm,
    extra=1,
    max_num=6,
    can_delete=True,
    can_delete_extra=False,
    validate_max=True,
)
AdverseEventFormSet = inlineformset_factory(
    Procedure,
    AdverseEvent,
    form=AdverseEventForm,
    extra=1,
    max_num=10,
    can_delete=True,
    can_delete_extra=False,
    validate_max=True,
)
