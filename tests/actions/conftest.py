"""What the action tests share: the action server's services on a fresh SQLite database, at a
fixed moment (NOW, a Wednesday evening in Madrid)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from common.geo import Neighbourhoods
from common.i18n import Catalogs
from common.places import Gazetteer
from dialogues.actions.context import Services
from storage.db import create_db_engine
from storage.migrate import upgrade_database
from tests.conftest import make_settings

MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 11, 25, 18, 30, tzinfo=MADRID)


@pytest.fixture
def services(tmp_path: Path, gazetteer: Gazetteer) -> Services:
    settings = make_settings(tmp_path)
    upgrade_database(settings.database_url)
    return Services(
        settings=settings,
        catalogs=Catalogs.load(settings.locales_dir),
        db=create_db_engine(settings.database_url),
        neighbourhoods=Neighbourhoods.from_geojson(settings.neighbourhoods_geojson),
        gazetteer=gazetteer,
        clock=lambda: NOW,
    )
