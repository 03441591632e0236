"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) under /open311/v2.

By job: ``format`` writes the answers (JSON or XML, and the spec's errors), ``services`` is the
list of services, ``redaction`` decides what a public read may see, ``routes`` holds the
handlers and the api_key checks; the queries are in ``storage.open311``.

Every resource answers in JSON or XML (the spec's required format) by its extension,
``/services.json`` or ``/services.xml``; any other extension is a 404. Errors are the spec's
list in the same format (``[{"code": 400, "description": "..."}]`` or
``<errors><error><code>400</code><description>...</description></error></errors>``) with the
matching HTTP status. XML is always built with ``xml.etree.ElementTree``, never by pasting
strings, and characters XML 1.0 cannot carry are dropped.

Services: one per Barri category except "other" (nine), all of type "realtime", group
"security", without metadata (so a service definition has no attributes). ``?lang=es|ca``
translates the service names through the bot's catalogs; descriptions stay English.

Posting a request needs ``api_key``: the API token of a staff user of role dispatcher or
admin (401 without a valid one, 403 for another role), in the ``X-Api-Key`` header (or
``Authorization: Bearer``), the form, or the query string as the spec has it (the access log
never records query strings). The case is stored with channel
"open311", the deployment's default locale, a new sender "open311:<uuid4>" per request and
the neighbourhood of lat/long (point in polygon) or, without them, ``address_string`` read by
the chat's own place resolver (``common.places``): a corner, a street and number, a landmark or a
neighbourhood becomes a point and a neighbourhood, a street that crosses several neighbourhoods
gets none; ``location_source`` and its radius are stored as for the chat. Contact details
(email, first_name, last_name, phone) are kept only when some are given (contact mode
"contact"; otherwise "anonymous"). The response is ``200`` with ``service_request_id``
(the case reference), ``service_notice`` and ``account_id``.
An audit entry records which staff user's key created the case.

Reading requests is public (no api_key), so it never shows who reported: no contact, no
sender, no channel, no exact address (``address`` is the neighbourhood's name) and
coordinates rounded to 3 decimals (about 100 m). The citizen's own words (``description``)
are NOT public: citizens are told their report is seen by the city's dispatchers, and free
text may name people or homes. Public reads give the service's name as the description; a
read with the ``api_key`` of a dispatcher or admin gets the citizen's text (erased cases
never show it).
``status_notes`` is the latest public note of the dispatchers only for staff reads: a note is
written to the citizen (it may name them or their door), so public reads give "". Assignees,
internal notes, priority and history are never shown. Cases of the category "other" have no
service and are not listed.

Sensitive categories (``SENSITIVE_CATEGORIES``: harassment and assault, where the time and
place identify a victim; drugs, where they identify the neighbour who watched the dealing)
are coarsened in public reads: both datetimes are the day (midnight in the deployment's
zone), there is no lat/long, only the neighbourhood. So that the filters cannot give back
what the answer hides, a sensitive case matches a public ``start_date``/``end_date`` window
when any part of its day does, and public listings are ordered by day and reference, never
by the exact time.

``GET /requests`` follows the spec's defaults: with no dates, the last 90 days; with one date,
90 days from ``start_date`` or up to ``end_date``; a range may not span more than 90 days
(400). At most 1,000 requests, newest first. ``service_request_id`` (comma separated
references) overrides every other filter, as the spec says. ``service_code`` and ``status``
(open|closed) may be comma separated too. Dates are ISO 8601 / W3C; a date without a zone is
in the deployment's time zone, and a "+" turned into a space by an unencoded query string is
read back as "+". Open statuses are new, acknowledged and in_progress; resolved, closed,
rejected and duplicate are closed. Unknown query parameters (``jurisdiction_id``...) are
ignored.
"""
