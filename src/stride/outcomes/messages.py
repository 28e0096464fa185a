"""The wording of invitations, reminders and letters.

Each message is a template whose first line is the subject. The shipped
wording lives in ``templates/outcomes/messages/<kind>.txt``; a clinic admin
replaces it for their clinic with a :class:`MessageTemplate` (Django admin).
Templates see only what the message needs: no diagnosis, no scores.
"""

from __future__ import annotations

import datetime as dt

from django.template import Context, Template
from django.template.loader import get_template

from stride.core import instruments as core_instruments
from stride.outcomes.links import link_until, url_for
from stride.outcomes.models import Contact, MessageTemplate

_KIND_TEMPLATE = {
    Contact.Kind.INVITATION: MessageTemplate.Kind.INVITATION,
    Contact.Kind.RESEND: MessageTemplate.Kind.INVITATION,
    Contact.Kind.REMINDER: MessageTemplate.Kind.REMINDER,
    Contact.Kind.LETTER: MessageTemplate.Kind.LETTER,
}


def template_text(clinic_id: int, kind: str) -> tuple[str, str]:
    """(subject, body template) for a clinic: its own version, or the shipped one."""
    own = MessageTemplate.objects.filter(clinic_id=clinic_id, kind=kind).first()
    if own is not None:
        return own.subject, own.body
    source = get_template(f"outcomes/messages/{kind}.txt").template.source
    subject, _, body = source.partition("\n")
    return subject.strip(), body.lstrip("\n")


def render_message(contact: Contact, *, base_url: str, now: dt.datetime) -> tuple[str, str]:
    follow_up = contact.follow_up
    patient = follow_up.patient
    until = dt.datetime.combine(follow_up.accepts_until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    link = link_until(patient, max(until, now + dt.timedelta(days=1)))
    names = [core_instruments.instrument(code).short_name for code in follow_up.instruments]
    context = Context(
        {
            "first_name": patient.given_name,
            "clinic": patient.clinic.name,
            "link": url_for(link, base_url),
            "timepoint": follow_up.timepoint_name.lower(),
            "closes_on": f"{follow_up.accepts_until:%d %B %Y}",
            "questionnaires": ", ".join(names),
        },
        autoescape=False,
    )
    subject, body = template_text(patient.clinic_id, _KIND_TEMPLATE[contact.kind])
    return Template(subject).render(context).strip(), Template(body).render(context)
