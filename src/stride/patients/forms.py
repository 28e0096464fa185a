from __future__ import annotations

from typing import Any

from django import forms

from stride.clinics import access
from stride.clinics.access import Action
from stride.forms import DateInput, StrideModelForm
from stride.patients.models import Consent, Patient


class PatientForm(StrideModelForm):
    class Meta:
        model = Patient
        fields = [
            "clinic",
            "record_number",
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "email",
            "phone",
            "height_cm",
            "weight_kg",
            "activity_level",
            "notes",
        ]
        widgets = {"date_of_birth": DateInput(), "notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["clinic"]  # moving a patient between clinics is not an edit
        else:
            clinics = access.clinics(user, Action.EDIT_PATIENT)
            self.fields["clinic"].queryset = clinics
            if len(clinics) == 1:
                self.fields["clinic"].initial = clinics[0]


class ConsentForm(StrideModelForm):
    class Meta:
        model = Consent
        fields = ["version", "consented_on", "withdrawn_on", "notes"]
        widgets = {
            "consented_on": DateInput(),
            "withdrawn_on": DateInput(),
            "notes": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "withdrawn_on": "Only when the patient withdraws. Their record stays; analyses leave them out."
        }
