"""Care: the clinical catalog and what happens to each patient.

The catalog tables mirror the data files in ``stride/care/catalog/`` (synced by
:mod:`stride.care.catalog_sync` after every migration and by ``stride catalog
sync``); records point at them, so an entry that leaves a file is retired,
never deleted.

FHIR: Condition ~ Condition (code: ICD-10-CM + SNOMED CT, bodySite with a
laterality qualifier); TreatmentHistory ~ Procedure with status completed and
performer outside the clinic, or MedicationStatement; Procedure ~ Procedure
(code: CPT/HCPCS; usedReference: the injectates as BiologicallyDerivedProduct
or MedicationAdministration); AdverseEvent ~ AdverseEvent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from stride.core import catalog as core_catalog
from stride.core import injectates, rules
from stride.core.errors import Invalid
from stride.patients.models import Patient
from stride.tokens import new_key
from stride.validation import collect


class Laterality(models.TextChoices):
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    BILATERAL = "bilateral", "Bilateral"


# --------------------------------------------------------------------------- catalog


class CatalogEntry(models.Model):
    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    catalog_version = models.PositiveIntegerField(default=1)
    retired = models.BooleanField(
        default=False, help_text="No longer in the catalog files; kept for old records."
    )

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BodySite(CatalogEntry):
    """A SNOMED CT body structure (id empty where not verified)."""

    snomed = models.CharField("SNOMED CT", max_length=18, blank=True)
    lateral = models.BooleanField(default=True)


class Site(CatalogEntry):
    """A finer location within a body site: an intermetatarsal space, a joint, a ligament."""

    body_site = models.ForeignKey(BodySite, on_delete=models.PROTECT, related_name="sites")


class ConditionType(CatalogEntry):
    snomed = models.CharField("SNOMED CT", max_length=18, blank=True)
    body_site = models.ForeignKey(BodySite, on_delete=models.PROTECT, related_name="+")
    sites = models.ManyToManyField(Site, related_name="condition_types", blank=True)
    icd10 = models.JSONField(help_text="ICD-10-CM code per side.")
    icd10_by_site = models.JSONField(default=dict, blank=True)
    seventh_character = models.BooleanField(default=False)
    excludes = models.JSONField(default=list, blank=True)
    qualifiers = models.JSONField(default=list, blank=True)

    def as_core(self) -> core_catalog.ConditionType:
        return core_catalog.ConditionType(
            code=self.code,
            name=self.name,
            snomed=self.snomed,
            body_site=self.body_site.code,
            sites=tuple(site.code for site in self.sites.all()),
            icd10=self.icd10,
            icd10_by_site=self.icd10_by_site,
            seventh_character=self.seventh_character,
            excludes=tuple(self.excludes),
            qualifiers=tuple(core_catalog.Qualifier(**q) for q in self.qualifiers),
        )


class ProcedureType(CatalogEntry):
    class Category(models.TextChoices):
        INJECTION = "injection", "Injection"
        SURGERY = "surgery", "Surgery"

    cpt = models.CharField("CPT / HCPCS", max_length=5)
    code_verified = models.BooleanField(default=True)
    category = models.CharField(max_length=20, choices=Category.choices)
    injectate_kinds = models.JSONField(default=list, blank=True)
    default_guidance = models.CharField(max_length=20, default="none")


class TreatmentKind(CatalogEntry):
    class Category(models.TextChoices):
        CONSERVATIVE = "conservative", "Conservative"
        INJECTION = "injection", "Injection"
        SURGERY = "surgery", "Surgery"

    category = models.CharField(max_length=20, choices=Category.choices)


class Drug(CatalogEntry):
    kind = models.CharField(max_length=30)


class AdverseEventKind(CatalogEntry):
    pass


# --------------------------------------------------------------------------- records


class ConditionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RESOLVED = "resolved", "Resolved"


class Condition(models.Model):
    """One episode of care: a catalog condition, on one side, at one site."""

    scope_path = "patient__"

    class Episode(models.TextChoices):
        INITIAL = "A", "Initial encounter"
        SUBSEQUENT = "D", "Subsequent encounter"
        SEQUELA = "S", "Sequela"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="conditions")
    condition_type = models.ForeignKey(
        ConditionType, on_delete=models.PROTECT, related_name="+", verbose_name="condition"
    )
    laterality = models.CharField(max_length=10, choices=Laterality.choices)
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="site detail"
    )
    site_note = models.CharField("site note", max_length=200, blank=True)
    episode = models.CharField(
        max_length=1,
        choices=Episode.choices,
        blank=True,
        help_text="Needed where the ICD-10-CM code takes a 7th character (sprains; steroid-induced wasting).",
    )
    qualifiers = models.JSONField(default=list, blank=True, help_text="Catalog findings that add a code.")
    icd10_code = models.CharField("ICD-10-CM", max_length=10, editable=False)
    additional_icd10 = models.JSONField(default=list, blank=True, editable=False)
    snomed_code = models.CharField("SNOMED CT", max_length=18, blank=True, editable=False)
    onset_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=ConditionStatus.choices, default=ConditionStatus.ACTIVE)
    resolved_on = models.DateField(null=True, blank=True)
    severity_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-onset_date", "-pk"]
        indexes = [models.Index(fields=["icd10_code"])]

    def __str__(self) -> str:
        side = self.get_laterality_display().lower()
        where = f", {self.site.name}" if self.site_id else ""
        return f"{self.condition_type.name} ({side}{where})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The codes follow the choices they derive from; an unrelated edit (e.g. the status)
        # keeps the codes given at the time, even if the catalog changed since.
        if not self.icd10_code or getattr(self, "_coded_from", None) != self._coding_inputs():
            self.assign_codes()
        super().save(*args, **kwargs)
        self._coded_from = self._coding_inputs()

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Condition:
        instance = super().from_db(db, field_names, values)
        instance._coded_from = instance._coding_inputs()
        return instance

    def _coding_inputs(self) -> tuple[object, ...]:
        qualifiers = tuple(self.qualifiers or ())
        return (self.condition_type_id, self.laterality, self.site_id, self.episode, qualifiers)

    def assign_codes(self) -> None:
        coding = core_catalog.resolve_condition_codes(
            self.condition_type.as_core(),
            self.laterality,
            site=self.site.code if self.site_id else "",
            episode=self.episode,
            qualifiers=self.qualifiers,
        )
        self.icd10_code = coding.icd10
        self.additional_icd10 = list(coding.additional_icd10)
        self.snomed_code = coding.snomed

    def clean(self) -> None:
        if not (self.patient_id and self.condition_type_id and self.laterality):
            return
        patient = self.patient
        today = patient.clinic.today()
        collect(
            self.assign_codes,
            lambda: (
                self.onset_date
                and rules.event_date(
                    self.onset_date, "onset_date", "onset date", born=patient.date_of_birth, today=today
                )
            ),
            lambda: (
                self.resolved_on
                and rules.event_date(
                    self.resolved_on,
                    "resolved_on",
                    "resolution date",
                    born=patient.date_of_birth,
                    today=today,
                )
            ),
            lambda: rules.not_before(
                self.resolved_on,
                self.onset_date,
                "resolved_on",
                "The condition cannot resolve before its onset.",
            ),
            self._check_resolution,
            self._check_exclusions,
        )

    def _check_resolution(self) -> None:
        if self.resolved_on and self.status != ConditionStatus.RESOLVED:
            raise Invalid("A condition with a resolution date must have the status 'resolved'.", "status")

    def _check_exclusions(self) -> None:
        """ICD-10-CM Excludes1 pairs (e.g. M25.37- and M24.27-) may not stand on the same side together."""
        if self.status != ConditionStatus.ACTIVE or not self.condition_type.excludes:
            return
        sides = (
            {self.laterality, "bilateral"}
            if self.laterality != "bilateral"
            else {"left", "right", "bilateral"}
        )
        clash = (
            Condition.objects.filter(
                patient_id=self.patient_id,
                status=ConditionStatus.ACTIVE,
                condition_type__code__in=self.condition_type.excludes,
                laterality__in=sides,
            )
            .exclude(pk=self.pk)
            .select_related("condition_type")
            .first()
        )
        if clash is not None:
            raise Invalid(
                f"{clash.condition_type.name} is already active on this side; ICD-10-CM does not allow both.",
                "condition_type",
            )


class Response(models.TextChoices):
    NONE = "none", "None"
    PARTIAL = "partial", "Partial"
    FULL = "full", "Full"
    UNKNOWN = "unknown", "Not known"


class DatePrecision(models.TextChoices):
    DAY = "day", "Exact day"
    MONTH = "month", "Month"
    YEAR = "year", "Year"


class TreatmentHistory(models.Model):
    """A treatment tried before, or elsewhere, and how well it worked."""

    scope_path = "patient__"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="history")
    condition = models.ForeignKey(
        Condition,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="history",
        help_text="What it was for.",
    )
    treatment = models.ForeignKey(TreatmentKind, on_delete=models.PROTECT, related_name="+")
    laterality = models.CharField(max_length=10, choices=Laterality.choices, blank=True)
    started_on = models.DateField("date")
    date_precision = models.CharField(max_length=5, choices=DatePrecision.choices, default=DatePrecision.DAY)
    provider = models.CharField(
        "by whom", max_length=200, blank=True, help_text="Clinician or clinic, or 'self'."
    )
    response = models.CharField(max_length=10, choices=Response.choices, default=Response.UNKNOWN)
    relief_weeks = models.PositiveIntegerField("relief lasted (weeks)", null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_on", "-pk"]
        verbose_name_plural = "treatment history"

    def __str__(self) -> str:
        return f"{self.treatment.name} ({self.started_on:%b %Y})"

    def clean(self) -> None:
        if not self.patient_id or self.started_on is None:
            return
        patient = self.patient
        collect(
            lambda: rules.event_date(
                self.started_on,
                "started_on",
                "treatment date",
                born=patient.date_of_birth,
                today=patient.clinic.today(),
            ),
            self._check_condition,
            self._check_relief,
        )

    def _check_condition(self) -> None:
        if self.condition_id and self.condition.patient_id != self.patient_id:
            raise Invalid("That condition belongs to another patient.", "condition")
        if self.condition_id and self.laterality:
            rules.procedure_side(self.laterality, self.condition.laterality)

    def _check_relief(self) -> None:
        if self.relief_weeks and self.response == Response.NONE:
            raise Invalid("A treatment with no response cannot have a period of relief.", "relief_weeks")


class ImageGuidance(models.TextChoices):
    ULTRASOUND = "ultrasound", "Ultrasound"
    FLUOROSCOPY = "fluoroscopy", "Fluoroscopy"
    NONE = "none", "None"


class Candidacy(models.TextChoices):
    GOOD = "good", "Good"
    FAIR = "fair", "Fair"
    POOR = "poor", "Poor"


class Procedure(models.Model):
    """A procedure done at the clinic, with its injectates and adverse events."""

    scope_path = "patient__"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="procedures")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="procedures")
    performed_on = models.DateField("date")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="procedures"
    )
    procedure_type = models.ForeignKey(
        ProcedureType, on_delete=models.PROTECT, related_name="+", verbose_name="procedure"
    )
    site = models.ForeignKey(
        Site,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="target structure",
    )
    target_note = models.CharField("target note", max_length=200, blank=True)
    laterality = models.CharField(max_length=10, choices=Laterality.choices)
    image_guidance = models.CharField(max_length=12, choices=ImageGuidance.choices)
    is_index = models.BooleanField(
        "index treatment",
        default=False,
        help_text="The treatment outcomes are measured from: starts this condition's follow-up schedule.",
    )
    candidacy = models.CharField(
        "candidacy grade",
        max_length=5,
        choices=Candidacy.choices,
        blank=True,
        help_text="How good a candidate the patient is for this treatment, as judged at the time.",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-performed_on", "-pk"]
        indexes = [models.Index(fields=["performed_on"])]

    def __str__(self) -> str:
        side = self.get_laterality_display().lower()
        return f"{self.procedure_type.name}, {side} ({self.performed_on:%d %b %Y})"

    def clean(self) -> None:
        if not (self.patient_id and self.performed_on):
            return
        patient = self.patient
        collect(
            lambda: rules.event_date(
                self.performed_on,
                "performed_on",
                "procedure date",
                born=patient.date_of_birth,
                today=patient.clinic.today(),
            ),
            self._check_condition,
        )

    def _check_condition(self) -> None:
        if not self.condition_id:
            return
        if self.condition.patient_id != self.patient_id:
            raise Invalid("That condition belongs to another patient.", "condition")
        if self.laterality:
            rules.procedure_side(self.laterality, self.condition.laterality)
        stored = (
            Procedure.objects.filter(pk=self.pk).values("is_index", "performed_on").first()
            if self.pk
            else None
        )
        unchanged_index = stored == {"is_index": True, "performed_on": self.performed_on}
        if self.is_index and self.performed_on and not unchanged_index:
            later = (
                Procedure.objects.filter(condition_id=self.condition_id, is_index=True)
                .exclude(pk=self.pk)
                .filter(performed_on__gte=self.performed_on)
                .first()
            )
            if later is not None:
                raise Invalid(
                    f"This condition already has an index treatment on {later.performed_on:%d %b %Y}; "
                    "a new index treatment must come after it.",
                    "is_index",
                )
        onset = self.condition.onset_date
        if onset and self.performed_on and self.performed_on < onset:
            raise Invalid(
                f"The procedure date is before the onset of this condition ({onset:%d %b %Y}).",
                "performed_on",
            )

    def site_key(self) -> tuple[int, str, object]:
        """What counts as "one site" for the steroid limit: patient, side and target (or condition)."""
        return (self.patient_id, self.laterality, self.site_id or f"condition {self.condition_id}")

    def steroid_dates_at_site(self) -> list[dt.date]:
        """Dates of the patient's steroid injections at this procedure's site (this one included)."""
        same_site = Procedure.objects.filter(patient_id=self.patient_id, laterality=self.laterality)
        if self.site_id:
            same_site = same_site.filter(site_id=self.site_id)
        else:
            same_site = same_site.filter(site__isnull=True, condition_id=self.condition_id)
        steroid = same_site.filter(injectates__kind="steroid")
        return list(steroid.values_list("performed_on", flat=True).distinct())

    @property
    def steroid_limit_exceeded(self) -> bool:
        if not any(i.kind == "steroid" for i in self.injectates.all()):
            return False
        return rules.steroid_limit_exceeded(self.steroid_dates_at_site(), self.performed_on)


class Injectate(models.Model):
    """What was injected, with the fields that matter for its kind (see :mod:`stride.core.injectates`)."""

    scope_path = "procedure__patient__"

    class Kind(models.TextChoices):
        STEROID = "steroid", "Corticosteroid"
        LOCAL_ANAESTHETIC = "local-anaesthetic", "Local anaesthetic"
        PRP = "prp", "PRP"
        PLATELET_LYSATE = "platelet-lysate", "Platelet lysate"
        BMC = "bmc", "Bone-marrow concentrate"
        DEXTROSE = "dextrose", "Dextrose"
        ALCOHOL = "alcohol", "Alcohol"

    class Leukocytes(models.TextChoices):
        RICH = "rich", "Leukocyte-rich"
        POOR = "poor", "Leukocyte-poor"

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="injectates")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    drug = models.ForeignKey(Drug, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    dose_mg = models.DecimalField("dose (mg)", max_digits=6, decimal_places=2, null=True, blank=True)
    volume_ml = models.DecimalField("volume (mL)", max_digits=5, decimal_places=2, null=True, blank=True)
    concentration_pct = models.DecimalField(
        "concentration (%)", max_digits=5, decimal_places=2, null=True, blank=True
    )
    platelet_count = models.DecimalField(
        "platelets (×10³/µL)", max_digits=7, decimal_places=1, null=True, blank=True
    )
    baseline_platelet_count = models.DecimalField(
        "whole-blood platelets (×10³/µL)", max_digits=6, decimal_places=1, null=True, blank=True
    )
    leukocytes = models.CharField(max_length=5, choices=Leukocytes.choices, blank=True)
    activation = models.CharField(max_length=20, blank=True)
    aspirate_volume_ml = models.DecimalField(
        "aspirate volume (mL)", max_digits=5, decimal_places=1, null=True, blank=True
    )
    tnc_per_ml = models.DecimalField(
        "nucleated cells (×10⁶/mL)", max_digits=7, decimal_places=2, null=True, blank=True
    )
    series_number = models.PositiveSmallIntegerField("session in series", null=True, blank=True)
    sites_injected = models.PositiveSmallIntegerField("sites injected", null=True, blank=True)
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.get_kind_display()

    VALUE_FIELDS = (
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
    )

    def values(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in self.VALUE_FIELDS}
        data["drug"] = self.drug.code if self.drug_id else None
        return data

    def clean(self) -> None:
        if not self.kind:
            return
        collect(self._check_values, self._check_allowed)

    def _check_values(self) -> None:
        injectates.validate(self.kind, self.values(), drug_kind=self.drug.kind if self.drug_id else None)
        if self.activation and self.activation not in core_catalog.catalog().activations:
            raise Invalid(f"Unknown activation {self.activation!r}.", "activation")

    def _check_allowed(self) -> None:
        try:
            procedure = self.procedure  # may be an unsaved procedure being recorded with it
        except Procedure.DoesNotExist:
            return
        if procedure.procedure_type_id and self.kind not in procedure.procedure_type.injectate_kinds:
            raise Invalid(
                f"A {procedure.procedure_type.name} does not record "
                f"a {injectates.kind_label(self.kind)} injectate.",
                "kind",
            )

    # Derived values: computed from the counts, never typed.
    @property
    def platelet_dose_billions(self) -> float | None:
        return injectates.platelet_dose_billions(self.platelet_count, self.volume_ml)

    @property
    def total_nucleated_cells_millions(self) -> float | None:
        return injectates.total_nucleated_cells_millions(self.tnc_per_ml, self.volume_ml)

    @property
    def paw(self) -> str | None:
        return injectates.paw_label(
            self.platelet_count, self.baseline_platelet_count, self.leukocytes, self.activation
        )

    @property
    def mishra(self) -> str | None:
        return injectates.mishra_label(
            self.platelet_count, self.baseline_platelet_count, self.leukocytes, self.activation
        )

    def summary(self) -> str:
        """One line a clinician reads at a glance."""
        parts: list[str] = [self.drug.name if self.drug_id else self.get_kind_display()]

        def add(value: Decimal | int | None, unit: str) -> None:
            if value is not None:
                parts.append(
                    f"{value.normalize() if isinstance(value, Decimal) else value:f} {unit}".replace(
                        ".000", ""
                    )
                )

        add(self.dose_mg, "mg")
        if self.concentration_pct is not None:
            parts.append(f"{self.concentration_pct.normalize():f}%")
        add(self.volume_ml, "mL")
        if self.kind == "prp":
            parts.append(self.get_leukocytes_display().lower())
            if self.platelet_count is not None:
                parts.append(f"{self.platelet_count.normalize():f}×10³/µL")
            if self.activation and self.activation != "none":
                parts.append(f"activated ({self.activation})")
        if self.kind == "bmc":
            if self.aspirate_volume_ml is not None:
                parts.append(f"from {self.aspirate_volume_ml.normalize():f} mL aspirate")
            if self.total_nucleated_cells_millions is not None:
                parts.append(f"{self.total_nucleated_cells_millions:g}×10⁶ TNC")
        if self.series_number:
            parts.append(f"session {self.series_number}")
        return ", ".join(parts)


class AdverseEvent(models.Model):
    """A complication after a procedure, as adjudicated by the clinician."""

    scope_path = "procedure__patient__"

    class Severity(models.TextChoices):
        MILD = "mild", "Mild"
        MODERATE = "moderate", "Moderate"
        SEVERE = "severe", "Severe"
        SERIOUS = "serious", "Serious (hospitalisation, disability or life-threatening)"

    class Relatedness(models.TextChoices):
        RELATED = "related", "Related"
        POSSIBLY = "possibly", "Possibly related"
        UNLIKELY = "unlikely", "Unlikely related"
        UNRELATED = "unrelated", "Not related"

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="adverse_events")
    kind = models.ForeignKey(
        AdverseEventKind, on_delete=models.PROTECT, related_name="+", verbose_name="event"
    )
    description = models.CharField(max_length=300, blank=True)
    onset_date = models.DateField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    relatedness = models.CharField("related to the procedure", max_length=10, choices=Relatedness.choices)
    adjudicated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["onset_date", "pk"]

    def __str__(self) -> str:
        return f"{self.kind.name} ({self.get_severity_display().lower()})"

    def clean(self) -> None:
        if not self.onset_date:
            return
        try:
            procedure = self.procedure  # may be an unsaved procedure being recorded with it
        except Procedure.DoesNotExist:
            return
        collect(
            lambda: rules.event_date(
                self.onset_date, "onset_date", "onset date", born=None, today=procedure.patient.clinic.today()
            ),
            lambda: rules.not_before(
                self.onset_date,
                procedure.performed_on,
                "onset_date",
                "An adverse event cannot begin before its procedure.",
            ),
            lambda: (
                self.resolved_on
                and rules.event_date(
                    self.resolved_on,
                    "resolved_on",
                    "resolution date",
                    born=None,
                    today=procedure.patient.clinic.today(),
                )
            ),
            lambda: rules.not_before(
                self.resolved_on, self.onset_date, "resolved_on", "The event cannot resolve before it began."
            ),
        )


# --------------------------------------------------------------------------- protocols and plans


class ProtocolVersion(models.Model):
    """One version of a protocol template: the TOML text and what it says, as parsed.

    The versions shipped in ``care/protocols/`` are synced in with no clinic;
    a clinic admin's edit creates a new version for that clinic. A plan keeps
    the version it was started from, whatever changes later.

    FHIR: PlanDefinition (with one ActivityDefinition per step).
    """

    scope_path = ""  # scoped by its clinic (shipped versions have none)

    code = models.SlugField(max_length=60)
    version = models.PositiveIntegerField()
    clinic = models.ForeignKey(
        "clinics.Clinic", on_delete=models.CASCADE, null=True, blank=True, related_name="protocol_versions"
    )
    name = models.CharField(max_length=200)
    text = models.TextField(help_text="The protocol as TOML, in the format of care/protocols/README.md.")
    conditions = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    retired = models.BooleanField(default=False)

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version", "clinic"], name="protocol_version_unique"),
            models.UniqueConstraint(
                fields=["code", "version"],
                condition=models.Q(clinic__isnull=True),
                name="shipped_version_unique",
            ),
        ]

    def __str__(self) -> str:
        owner = f", {self.clinic}" if self.clinic_id else ""
        return f"{self.name} (v{self.version}{owner})"


class CarePlan(models.Model):
    """A protocol started on one condition of one patient: its steps with their dates.

    FHIR: CarePlan (instantiatesCanonical the PlanDefinition; activity per step).
    """

    scope_path = "condition__patient__"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        STOPPED = "stopped", "Stopped"

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="plans")
    protocol = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="plans")
    anchor_date = models.DateField(help_text="Day 0: the index step's planned day.")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="plans"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    stopped_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-anchor_date", "-pk"]

    def __str__(self) -> str:
        return f"{self.protocol.name} for {self.condition}"


class PlanStep(models.Model):
    """One step of a plan: what, when (with its window), and what became of it."""

    scope_path = "plan__condition__patient__"

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="steps")
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    planned_on = models.DateField(db_index=True)
    window_start = models.DateField()
    window_end = models.DateField()
    first_planned_on = models.DateField(help_text="The date the protocol gave, before any rescheduling.")
    optional = models.BooleanField(default=False)
    is_anchor = models.BooleanField(default=False)
    session = models.CharField(max_length=60, blank=True)
    defaults = models.JSONField(default=dict, blank=True, help_text="Procedure type, site, injectates…")
    note = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNED)
    procedure = models.OneToOneField(
        Procedure, on_delete=models.SET_NULL, null=True, blank=True, related_name="plan_step"
    )
    done_on = models.DateField(null=True, blank=True)
    deviation = models.BooleanField(default=False, help_text="Done outside its window.")
    reason = models.CharField(
        max_length=300, blank=True, help_text="Why it was rescheduled, skipped or added."
    )
    added = models.BooleanField(default=False, help_text="Added to the plan, not from the protocol.")

    class Meta:
        ordering = ["planned_on", "pk"]
        constraints = [models.UniqueConstraint(fields=["plan", "code"], name="step_code_unique_in_plan")]

    def __str__(self) -> str:
        return f"{self.name} ({self.planned_on:%d %b %Y})"


class PlanStepChange(models.Model):
    """Every reschedule, skip, addition and completion of a step, with its reason."""

    scope_path = "step__plan__condition__patient__"

    step = models.ForeignKey(PlanStep, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=20)
    from_date = models.DateField(null=True, blank=True)
    to_date = models.DateField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.step}"


class CalendarFeed(models.Model):
    """A clinician's private iCalendar address: their plan steps, for a calendar app to subscribe to.

    Calendar apps cannot log in, so the address itself is the secret: signed,
    revocable, and showing record numbers and step names only — no names,
    no diagnoses.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    key = models.CharField(max_length=64, unique=True, default=new_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"
