"""Follow-up: episodes, their schedule, questionnaire responses and scores, and every contact.

An :class:`Episode` starts when a condition gets its index treatment (or a
clinician sets the index date); it owns one :class:`FollowUp` per time point
of the schedule. A patient answers through a personal :class:`PatientLink`
(or a coordinator enters a paper form); each answered instrument is a
:class:`QuestionnaireResponse` with one :class:`Score` per scale. Every
invitation, reminder, phone call and letter is a :class:`Contact`, so
response rates can be told by time point and by how the patient was reached.

FHIR: Episode ~ EpisodeOfCare; FollowUp ~ Task (executionPeriod = window)
under a CarePlan; QuestionnaireResponse ~ QuestionnaireResponse; Score ~
Observation (derivedFrom the response); Contact ~ Communication /
CommunicationRequest.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from stride.care.models import Condition, Procedure
from stride.clinics.models import Clinic
from stride.core import schedule as core_schedule
from stride.patients.models import Patient
from stride.tokens import new_key


class Episode(models.Model):
    """A course of follow-up anchored to one index treatment of one condition."""

    scope_path = "condition__patient__"

    class EndReason(models.TextChoices):
        NEW_INDEX = "new-index", "A new index treatment started a new episode"
        WITHDRAWN = "withdrawn", "Consent withdrawn"
        STOPPED = "stopped", "Follow-up stopped by the clinic"

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="episodes")
    index_date = models.DateField()
    index_procedure = models.OneToOneField(
        Procedure, on_delete=models.SET_NULL, null=True, blank=True, related_name="episode"
    )
    schedule_version = models.PositiveIntegerField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_on = models.DateField(null=True, blank=True, help_text="Censored from this day on.")
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)

    class Meta:
        ordering = ["-index_date", "-pk"]

    def __str__(self) -> str:
        return f"Follow-up of {self.condition} from {self.index_date:%d %b %Y}"

    @property
    def active(self) -> bool:
        return self.ended_on is None


class FollowUp(models.Model):
    """One time point of an episode: its window, the questionnaires due, and its state."""

    scope_path = "patient__"

    class Status(models.TextChoices):
        PENDING = "pending", "Not open yet"
        DUE = "due", "Due"
        COMPLETED = "completed", "Completed"
        MISSED = "missed", "Missed"
        CANCELLED = "cancelled", "Cancelled"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="follow_ups")
    # Denormalised from the episode so the worklist and the worker can filter without joins.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="follow_ups")
    timepoint = models.CharField(max_length=20)
    opens_on = models.DateField()
    due_on = models.DateField()
    closes_on = models.DateField()
    accepts_until = models.DateField(help_text="Last day answers are taken (the baseline's grace, flagged).")
    instruments = models.JSONField(help_text="Instrument codes to answer, in order.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_on", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["episode", "timepoint"], name="one_follow_up_per_timepoint")
        ]
        indexes = [models.Index(fields=["status", "opens_on"]), models.Index(fields=["status", "closes_on"])]

    def __str__(self) -> str:
        return f"{self.timepoint_name} follow-up ({self.get_status_display().lower()})"

    @property
    def timepoint_name(self) -> str:
        try:
            return core_schedule.schedule().timepoint(self.timepoint).name
        except KeyError:
            return self.timepoint

    @property
    def window(self) -> core_schedule.Window:
        return core_schedule.Window(
            self.timepoint, self.opens_on, self.due_on, self.closes_on, self.accepts_until
        )

    def is_open(self, today: dt.date) -> bool:
        """Whether answers are taken today."""
        return (
            self.status in (self.Status.PENDING, self.Status.DUE)
            and self.opens_on <= today <= self.accepts_until
        )


class QuestionnaireResponse(models.Model):
    """One instrument answered once: the answers as given, in item order."""

    scope_path = "patient__"

    class Status(models.TextChoices):
        IN_PROGRESS = "in-progress", "In progress"
        COMPLETED = "completed", "Completed"

    class Source(models.TextChoices):
        PATIENT = "patient", "Patient, through their link"
        PAPER = "paper", "Paper form, entered by staff"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="responses")
    follow_up = models.ForeignKey(
        FollowUp, on_delete=models.CASCADE, null=True, blank=True, related_name="responses"
    )
    instrument = models.CharField(max_length=40)
    instrument_version = models.CharField(max_length=20)
    context = models.CharField(
        max_length=100, blank=True, help_text="E.g. the recall period of a pain score."
    )
    answers = models.JSONField(help_text='In item order: an integer, null (unanswered) or "NA".')
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    source = models.CharField(max_length=10, choices=Source.choices)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    collected_on = models.DateField(help_text="The day the patient answered.")
    started_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True, help_text="E.g. baseline-after-index, late.")

    class Meta:
        ordering = ["-collected_on", "-pk"]
        constraints = [
            # One answer set per instrument per follow-up: never counted twice.
            models.UniqueConstraint(
                fields=["follow_up", "instrument"],
                condition=Q(follow_up__isnull=False),
                name="one_response_per_instrument_per_follow_up",
            ),
        ]
        indexes = [models.Index(fields=["instrument", "status"])]

    def __str__(self) -> str:
        return f"{self.instrument} v{self.instrument_version} ({self.get_status_display().lower()})"


class Score(models.Model):
    """One scale of a completed response, scored by the instrument's rule and a named policy."""

    scope_path = "response__patient__"

    response = models.ForeignKey(QuestionnaireResponse, on_delete=models.CASCADE, related_name="scores")
    instrument = models.CharField(max_length=40)
    scale = models.CharField(max_length=40)
    value = models.FloatField(null=True, blank=True, help_text="Empty when the rules withhold the score.")
    valid = models.BooleanField()
    answered = models.PositiveSmallIntegerField()
    not_applicable = models.PositiveSmallIntegerField()
    missing = models.PositiveSmallIntegerField()
    policy = models.CharField(max_length=40)
    flags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["response", "pk"]
        constraints = [models.UniqueConstraint(fields=["response", "scale"], name="one_score_per_scale")]
        indexes = [models.Index(fields=["instrument", "scale"])]

    def __str__(self) -> str:
        return f"{self.instrument} {self.scale}: {self.value}"


class PatientLink(models.Model):
    """A patient's personal link to their questionnaires: signed, expiring, revocable."""

    scope_path = "patient__"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="links")
    key = models.CharField(max_length=64, unique=True, default=new_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Link for patient {self.patient_id} until {self.expires_at:%d %b %Y}"

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class Contact(models.Model):
    """One attempt to reach a patient about a follow-up, and what came of it."""

    scope_path = "follow_up__patient__"

    class Kind(models.TextChoices):
        INVITATION = "invitation", "Invitation"
        REMINDER = "reminder", "Reminder"
        PHONE_CALL = "phone-call", "Phone call"
        LETTER = "letter", "Letter"
        RESEND = "resend", "Invitation sent again"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"
        LETTER = "letter", "Letter"

    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        OPEN = "open", "On the worklist"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        NO_EMAIL = "no-email", "No email address"
        SEND_ERROR = "send-error", "Could not be sent"
        INTERRUPTED = "interrupted", "Interrupted while sending; not sent again"
        ANSWERED = "answered", "Patient answered first"
        WINDOW_CLOSED = "window-closed", "Window closed first"
        EPISODE_ENDED = "episode-ended", "Follow-up ended"
        REACHED = "reached", "Reached the patient"
        NO_ANSWER = "no-answer", "No answer"
        LEFT_MESSAGE = "left-message", "Left a message"
        WRONG_NUMBER = "wrong-number", "Wrong number"
        DECLINED = "declined", "Patient declined"
        LETTER_SENT = "letter-sent", "Letter sent"

    follow_up = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="contacts")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    due_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=10, choices=State.choices, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=80, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    note = models.CharField(max_length=300, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            # The scheduled contacts happen at most once per follow-up; a resend may be asked for again.
            models.UniqueConstraint(
                fields=["follow_up", "kind"],
                condition=~Q(kind="resend"),
                name="one_scheduled_contact_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_state_display().lower()})"


class MessageTemplate(models.Model):
    """The wording of an email or letter; a clinic's own version replaces the shipped one."""

    scope_path = ""  # scoped by its own clinic

    class Kind(models.TextChoices):
        INVITATION = "invitation", "Invitation email"
        REMINDER = "reminder", "Reminder email"
        LETTER = "letter", "Letter"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="message_templates")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField(
        help_text="Placeholders: {{ first_name }}, {{ clinic }}, {{ link }}, {{ timepoint }}, "
        "{{ closes_on }}, {{ questionnaires }}."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["clinic", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "kind"], name="one_template_per_kind_per_clinic")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.clinic}"


class InstrumentWording(models.Model):
    """A clinic's licensed, official wording of an instrument's items (link id → text).

    Stride ships no verbatim item text of any published instrument; a clinic
    that holds the licence loads its copy, and its patients then see it.
    """

    scope_path = ""  # scoped by its own clinic

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="instrument_wordings")
    instrument = models.CharField(max_length=40)
    instrument_version = models.CharField(max_length=20)
    texts = models.JSONField(help_text="Item link id → the official text of the item.")
    source = models.CharField(max_length=200, help_text="Where the wording comes from (the licensed copy).")
    loaded_by = models.CharField(max_length=150, blank=True)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["clinic", "instrument"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "instrument"], name="one_wording_per_instrument_per_clinic"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument} wording for {self.clinic}"
