"""A clinic admin edits a protocol in the app: the edit is checked and saved as the clinic's next version."""

from __future__ import annotations

from stride.care.models import ProtocolVersion


def _shipped(code: str = "morton-neuroma-platelet-lysate") -> ProtocolVersion:
    return ProtocolVersion.objects.get(code=code, clinic__isnull=True)


def test_a_clinic_admin_saves_an_edited_protocol_as_the_clinics_next_version(client, cast) -> None:
    shipped = _shipped()
    client.force_login(cast.adam)
    form = client.get("/admin/care/protocolversion/add/", {"code": shipped.code})
    assert form.status_code == 200
    assert "Perineural" in form.content.decode() or shipped.name in form.content.decode()
    text = shipped.text.replace(f'name = "{shipped.name}"', 'name = "Lakeside platelet lysate course"', 1)
    assert text != shipped.text
    response = client.post(
        "/admin/care/protocolversion/add/", {"clinic": cast.clinic_a.pk, "code": shipped.code, "text": text}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    edited = ProtocolVersion.objects.get(code=shipped.code, clinic=cast.clinic_a)
    assert (edited.version, edited.name) == (shipped.version + 1, "Lakeside platelet lysate course")
    shipped.refresh_from_db()
    assert shipped.name != "Lakeside platelet lysate course"  # the shipped version never changes


def test_a_broken_protocol_is_refused_with_the_reason(client, cast) -> None:
    shipped = _shipped()
    client.force_login(cast.adam)
    text = shipped.text.replace('kind = "procedure"', 'kind = "magic"', 1)
    before = ProtocolVersion.objects.count()
    response = client.post(
        "/admin/care/protocolversion/add/", {"clinic": cast.clinic_a.pk, "code": shipped.code, "text": text}
    )
    assert response.status_code == 200
    assert "magic" in response.content.decode()
    assert ProtocolVersion.objects.count() == before


def test_a_clinician_cannot_edit_protocols_and_admins_only_for_their_clinic(client, cast) -> None:
    client.force_login(cast.alice)
    assert client.get("/admin/care/protocolversion/add/").status_code == 302
    shipped = _shipped()
    client.force_login(cast.adam)
    response = client.post(
        "/admin/care/protocolversion/add/",
        {"clinic": cast.clinic_b.pk, "code": shipped.code, "text": shipped.text},
    )
    assert response.status_code == 200  # clinic B is not a choice for Lakeside's admin
    assert not ProtocolVersion.objects.filter(clinic=cast.clinic_b).exists()
