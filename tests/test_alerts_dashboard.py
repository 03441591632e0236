"""The dashboard's alert pages, the escalation highlight in the queue and the perceived-safety
section of the stats page, on a real bot service and a real database, through HTTP with real
sessions and CSRF tokens."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from markupsafe import escape
from sqlalchemy import update
from sqlmodel import select

from storage.db import session_scope
from storage.models import Alert, Case, OutboxMessage, Reporter, Subscription, SurveyResponse, utcnow
from storage.outbox import decode_payload
from tests.desk import Desk, csrf_of, sign_in

pytest_plugins = ("tests.desk",)  # the desk fixture

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def subscribe(desk: Desk, *codes: str, locale: str = "es") -> uuid.UUID:
    with session_scope(desk.db) as session:
        reporter = Reporter(channel="telegram", sender_id=f"telegram:{uuid.uuid4().hex[:12]}", locale=locale)
        session.add(reporter)
        session.flush()
        session.add_all([Subscription(reporter_id=reporter.id, neighbourhood_code=code) for code in codes])
        return reporter.id


def form_key(page: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page)
    assert found, "the alert form has an idempotency key"
    return found.group(1)


async def test_alert_pages_are_for_community_and_admin_users(desk: Desk) -> None:
    with session_scope(desk.db) as session:
        alert = Alert(created_by="admin1", severity="info", neighbourhood_codes='["01-01"]', texts='{"en": "x"}')
        session.add(alert)
    paths = [("GET", "/desk/alerts"), ("POST", "/desk/alerts"), ("GET", f"/desk/alerts/{alert.id}"),
             ("POST", f"/desk/alerts/{alert.id}/cancel")]
    routes = {(r.method, r.resource.canonical) for r in desk.server.app.router.routes()
              if r.resource and r.resource.canonical.startswith("/desk/alerts")}
    assert routes == {("GET", "/desk/alerts"), ("POST", "/desk/alerts"), ("GET", "/desk/alerts/{alert_id}"),
                      ("POST", "/desk/alerts/{alert_id}/cancel"), ("HEAD", "/desk/alerts"),
                      ("HEAD", "/desk/alerts/{alert_id}")}
    anonymous = await desk.client()
    dispatcher = await desk.client("dispatcher1")
    token = csrf_of(await (await dispatcher.get("/desk/")).text())
    for method, path in paths:
        nobody = await anonymous.request(method, path, allow_redirects=False)
        assert nobody.status == (303 if method == "GET" else 401), (method, path)
        refused = await dispatcher.request(method, path, data={"csrf": token} if method == "POST" else None,
                                           allow_redirects=False)
        assert refused.status == 403, (method, path)
        assert "community teams and administrators" in await refused.text()
    dispatcher_nav = await (await dispatcher.get("/desk/")).text()
    assert 'href="/desk/alerts"' not in dispatcher_nav

    community = await desk.client()
    landed = await sign_in(community, "community1")
    assert landed.headers["Location"] == "/desk/alerts"  # not the queue, which is for dispatchers
    page = await (await community.get("/desk/alerts")).text()
    assert 'href="/desk/alerts" aria-current="page"' in page and 'href="/desk/map"' not in page
    assert page.count("<form") == page.count('name="csrf"') == 3  # desk language, sign out, new alert
    # without the form's token nothing is sent, nor cancelled
    no_token = await community.post("/desk/alerts", data={"neighbourhood": "01-01", "severity": "info",
                                                          "text_en": "hello"}, allow_redirects=False)
    assert no_token.status == 403
    assert (await community.post(f"/desk/alerts/{alert.id}/cancel", allow_redirects=False)).status == 403
    admin = await desk.client("admin1")
    admin_page = await (await admin.get(f"/desk/alerts/{alert.id}")).text()
    assert 'href="/desk/alerts"' in admin_page and 'href="/desk/"' in admin_page
    with session_scope(desk.db) as session:
        assert session.exec(select(Alert)).one().cancelled_at is None


async def test_an_alert_from_the_form_reaches_each_subscriber_once_and_is_shown_escaped(desk: Desk) -> None:
    both = subscribe(desk, "01-01", "06-31", locale="ca")
    english = subscribe(desk, "06-31", locale="en")
    community = await desk.client("community1")
    page = await (await community.get("/desk/alerts")).text()
    assert "Ciutat Vella" in page and "Gràcia" in page and 'value="01-01"' in page  # grouped by district
    hostile = f"Talls de llum {SCRIPT} {IMG}"
    form = {"csrf": csrf_of(page), "key": form_key(page), "neighbourhood": ["01-01", "06-31"], "severity": "danger",
            "text_ca": hostile, "text_en": "Power cuts tonight.", "text_es": "",
            "expires": (utcnow() + timedelta(days=1)).astimezone(desk.settings.zone).strftime("%Y-%m-%dT%H:%M")}
    data = [(name, value) for name, values in form.items()
            for value in (values if isinstance(values, list) else [values])]
    sent = await community.post("/desk/alerts", data=data, allow_redirects=False)
    assert sent.status == 303, await sent.text()
    location = sent.headers["Location"]
    assert re.fullmatch(r"/desk/alerts/[0-9a-f-]{36}\?sent=1", location)
    again = await community.post("/desk/alerts", data=data, allow_redirects=False)  # a double click
    assert again.status == 303 and again.headers["Location"] == location
    with session_scope(desk.db) as session:
        assert len(session.exec(select(Alert)).all()) == 1
        rows = {row.reporter_id: row for row in session.exec(select(OutboxMessage)).all()}
    assert set(rows) == {both, english} and all(row.urgent for row in rows.values())
    assert decode_payload(rows[both].payload)[0] == f"🚨 Perill · Avís per a el Raval, la Vila de Gràcia\n\n{hostile}"
    assert decode_payload(rows[english].payload)[0] == "🚨 Danger · Alert for la Vila de Gràcia\n\nPower cuts tonight."

    detail = await (await community.get(location)).text()
    assert SCRIPT not in detail and IMG not in detail
    assert str(escape(hostile)) in detail  # shown as text, the way Jinja2's autoescape writes it
    assert "2 messages queued" in detail
    assert re.search(r'id="count-pending">2<', detail) and re.search(r'id="count-total">2<', detail)
    listing = await (await community.get("/desk/alerts")).text()
    assert SCRIPT not in listing and IMG not in listing and "el Raval, la Vila de Gràcia" in listing

    alert_id = location.split("/")[-1].split("?")[0]
    with session_scope(desk.db) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.reporter_id == english).values(status="sent"))
    cancelled = await community.post(f"/desk/alerts/{alert_id}/cancel", data={"csrf": csrf_of(detail)},
                                     allow_redirects=False)
    assert cancelled.status == 303 and cancelled.headers["Location"] == f"/desk/alerts/{alert_id}?cancelled=1"
    after = await (await community.get(cancelled.headers["Location"])).text()
    assert "1 unsent message withdrawn" in after and 'id="alert-state">Cancelled<' in after
    assert re.search(r'id="count-sent">1<', after) and re.search(r'id="count-cancelled">1<', after)
    assert 'id="cancel-form"' not in after
    assert (await community.get(f"/desk/alerts/{uuid.uuid4()}")).status == 404
    assert (await community.get("/desk/alerts/nope")).status == 404


async def test_the_form_explains_what_is_wrong_and_keeps_what_was_typed(desk: Desk) -> None:
    community = await desk.client("community1")
    page = await (await community.get("/desk/alerts")).text()
    answer = await community.post("/desk/alerts", data={"csrf": csrf_of(page), "key": form_key(page),
                                                        "severity": "warning", "text_es": " ", "text_en": "",
                                                        "text_ca": "", "expires": "2020-01-01T10:00"})
    assert answer.status == 422
    text = await answer.text()
    for message in ("Neighbourhoods: choose at least one neighbourhood.",
                    "Text: write the alert in at least one language.", "Expiry: must be in the future."):
        assert message in text
    long_text = IMG + "x" * 1000
    answer = await community.post("/desk/alerts", data={"csrf": csrf_of(page), "key": form_key(page),
                                                        "neighbourhood": "01-02", "severity": "info",
                                                        "text_en": long_text, "expires": "soon"})
    assert answer.status == 422
    text = await answer.text()
    assert "Expiry: write a date and time" in text
    answer = await community.post("/desk/alerts", data={"csrf": csrf_of(page), "key": form_key(page),
                                                        "neighbourhood": "01-02", "severity": "info",
                                                        "text_en": long_text})
    text = await answer.text()
    assert answer.status == 422 and "Text (English): at most 1000 characters" in text
    assert IMG not in text and 'value="01-02" checked' in text  # kept, escaped
    with session_scope(desk.db) as session:
        assert session.exec(select(Alert)).all() == [] and session.exec(select(OutboxMessage)).all() == []


async def test_escalated_cases_are_highlighted_in_the_queue_while_still_new(desk: Desk) -> None:
    waiting = desk.new_case(description="Nobody looked at this yet.")
    seen = desk.new_case(description="Escalated, then acknowledged.")
    calm = desk.new_case()
    with session_scope(desk.db) as session:
        session.execute(update(Case).where(Case.ref.in_([waiting, seen])).values(escalated_at=utcnow()))
    desk.change(seen, status="acknowledged")
    dispatcher = await desk.client("dispatcher1")
    page = await (await dispatcher.get("/desk/")).text()

    def row(ref: str) -> str:
        found = re.search(rf'<tr id="case-{ref}".*?</tr>', page, re.DOTALL)
        assert found
        return found.group(0)

    assert 'class="case-row priority-normal escalated"' in row(waiting)
    assert re.search(r'<span class="badge escalated"[^>]*>Escalated</span>', row(waiting))
    for other in (seen, calm):
        assert "escalated\"" not in row(other).split(">")[0]
        assert re.search(r'<span class="badge escalated"[^>]* hidden>Escalated</span>', row(other))
    assert re.search(r'id="count-escalated">1<', page)
    # the live stream carries the mark too, for rows the page's script draws
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    stream = await dispatcher.get(f"/desk/events?since={since}", headers={"Accept": "text/event-stream"})
    body = b""
    while b'"ref": "' + waiting.encode() not in body and b'"ref":"' + waiting.encode() not in body:
        body += await stream.content.readany()
    stream.close()
    chunk = body.decode()
    assert '"escalated": true' in chunk or '"escalated":true' in chunk


async def test_stats_chart_perceived_safety_per_neighbourhood_and_week(desk: Desk) -> None:
    answers = [("01-01", 2, True, 4, 0), ("01-01", 4, False, 2, 0), ("01-01", 3, True, 5, 7), ("06-31", 5, True, 5, 0)]
    refs = [desk.new_case(neighbourhood_code=code) for code, *_ in answers]
    with session_scope(desk.db) as session:
        for ref, (code, safety, solved, satisfaction, days_ago) in zip(refs, answers, strict=True):
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            session.add(SurveyResponse(case_id=case.id, neighbourhood_code=code, safety=safety, solved=solved,
                                       satisfaction=satisfaction, answered_at=utcnow() - timedelta(days=days_ago)))
    dispatcher = await desk.client("dispatcher1")
    page = await (await dispatcher.get("/desk/stats")).text()
    assert re.search(r'id="kpi-surveys">4<', page) and re.search(r'id="kpi-solved">75%<', page)
    assert re.search(r'id="kpi-satisfaction">4.0 / 5<', page) and re.search(r'id="kpi-safety">3.5 / 5<', page)
    chart = re.search(r'<section class="card chart-card wide"[^>]*id="chart-safety">.*?</section>', page, re.DOTALL)
    assert chart
    section = chart.group(0)
    assert section.count('<g class="line series') == 3  # all, el Raval, la Vila de Gràcia
    assert "el Raval: 3.0 (2 answers)" in section and "el Raval: 3.0 (1 answer)" in section
    table = re.search(r'<table class="data" id="safety-table">.*?</table>', section, re.DOTALL).group(0)
    raval = re.search(r"<tr><th scope=\"row\">el Raval</th>(.*?)</tr>", table).group(1)
    assert raval.startswith("<td>3.0</td><td>3</td>")
    assert "3.0 <span class=\"muted\">(2)</span>" in raval and "3.0 <span class=\"muted\">(1)</span>" in raval
    assert "<th scope=\"row\">la Vila de Gràcia</th><td>5.0</td><td>1</td>" in table
