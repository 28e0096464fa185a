from __future__ import annotations

from typing import Any

from django import forms

from stride.care.models import Condition, Laterality, Site
from stride.forms import DateInput
from stride.imaging.models import Image
from stride.imaging.services import Upload
from stride.patients.models import Patient

_FROM_FILE = ("", "From the file")


class UploadForm(forms.Form):
    """An image for one of the patient's conditions; what the DICOM header says fills the blanks."""

    file = forms.FileField(
        help_text="DICOM (ultrasound, X-ray, multi-frame clips), PNG or JPEG. The original is kept as it is."
    )
    condition = forms.ModelChoiceField(queryset=Condition.objects.none())
    acquired_on = forms.DateField(
        label="Date taken",
        required=False,
        widget=DateInput(),
        help_text="Leave empty to take it from the DICOM header.",
    )
    laterality = forms.ChoiceField(label="Side", required=False, choices=[_FROM_FILE, *Laterality.choices])
    site = forms.ModelChoiceField(
        label="Site detail", queryset=Site.objects.filter(retired=False), required=False
    )
    view = forms.ChoiceField(required=False, choices=[_FROM_FILE, *Image.View.choices])
    modality = forms.ChoiceField(required=False, choices=[_FROM_FILE, *Image.Modality.choices])
    frame = forms.IntegerField(
        label="Frame to measure",
        min_value=1,
        required=False,
        help_text="For a multi-frame clip: the frame to show and measure (1 = the first); changeable later.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, patient: Patient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = patient.conditions.select_related("condition_type", "site")

    def details(self) -> Upload:
        data = self.cleaned_data
        frame = data.get("frame")
        return Upload(
            condition=data["condition"],
            acquired_on=data.get("acquired_on"),
            laterality=data.get("laterality") or "",
            site=data.get("site"),
            view=data.get("view") or "",
            modality=data.get("modality") or "",
            frame=frame - 1 if frame else None,
            note=data.get("note") or "",
        )


class ImageEditForm(forms.ModelForm):
    """What can be corrected after upload (never the file itself)."""

    class Meta:
        model = Image
        fields = ["condition", "acquired_on", "laterality", "site", "view", "modality", "note"]
        widgets = {"acquired_on": DateInput(), "note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = self.instance.patient.conditions.select_related("condition_type")
        self.fields["site"].queryset = Site.objects.filter(retired=False)
