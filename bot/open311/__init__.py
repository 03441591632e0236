"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) under /open311/v2.

By job: ``format`` writes the answers (JSON or XML by the extension, and the spec's errors),
``services`` is the list of services (one per category but "other"), ``redaction`` decides
what a read may see (public reads never show who reported, nor the exact time and place of
sensitive cases), ``routes`` holds the handlers, the api_key checks and what the spec says of
posting and listing requests. The queries are in ``storage.open311``.
"""
