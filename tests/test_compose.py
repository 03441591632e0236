"""The production stack file: no Docker engine runs here, so its structure is checked
against the code (services, health checks, the variables the settings read)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from bot.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "actions", "bot")


def test_every_service_is_there_with_a_health_check_and_ordered_start() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "actions", "engine", "bot"}
    for name in ("postgres", "redis", "actions", "engine", "bot"):
        assert SERVICES[name]["healthcheck"]["test"], name
    # the bot service takes messages while the engine loads (kept, then replayed): ready is /readyz
    assert SERVICES["bot"]["depends_on"]["engine"]["condition"] == "service_started"
    assert SERVICES["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(SERVICES["bot"]["healthcheck"]["test"])
    assert SERVICES["engine"]["depends_on"]["actions"]["condition"] == "service_healthy"
    assert SERVICES["actions"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"] == ["barri", "db", "upgrade"]
    assert set(COMPOSE["volumes"]) == {"postgres-data", "redis-data"}


def test_images_are_built_from_files_in_the_project() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file(), name
    engine_endpoints = SERVICES["engine"]["volumes"][0].split(":")[0]
    assert (PROJECT_ROOT / engine_endpoints).is_file()


def test_the_app_reads_every_variable_the_stack_sets() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        for variable in SERVICES[name].get("environment", {}):
            assert variable in fields, f"{name} sets {variable}, which no setting reads"
    example = (PROJECT_ROOT / ".env.example").read_text()
    declared = {line.split("=", 1)[0].lstrip("# ") for line in example.splitlines() if "=" in line}
    assert {"SECRET_KEY", "RASA_TOKEN", "POSTGRES_PASSWORD"} <= declared
    assert declared - {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= fields


def test_secrets_come_from_the_env_file_only() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(SECRET_KEY|PASSWORD|TOKEN)\s*:\s*[\"']?[A-Za-z0-9]{8,}", text)
    assert all(SERVICES[name].get("env_file") == ".env" for name in ("postgres", "engine", *APP_SERVICES))
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_the_stack_ports_match_the_defaults() -> None:
    assert SERVICES["bot"]["ports"] == ["8080:8080"]
    assert Settings.model_fields["bot_port"].default == 8080
    assert Path(PROJECT_ROOT / "deploy" / "engine-endpoints.yml").read_text().count("actions:5055") == 2


def test_the_engine_image_trains_on_the_data_make_trains_on() -> None:
    dockerfile = (PROJECT_ROOT / "deploy" / "engine.Dockerfile").read_text()
    data = re.search(r"--data ((?:[\w./-]+ )+)", dockerfile)
    assert data, "the engine image trains with --data"
    paths = subprocess.run([str(PROJECT_ROOT / "scripts" / "engine-data.sh"), "paths"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert data.group(1).split() == paths


def test_the_bot_behind_the_stacks_proxy_reads_the_client_address_from_it() -> None:
    assert SERVICES["bot"]["environment"]["TRUSTED_PROXIES"] == "${TRUSTED_PROXIES:-1}"
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert "\nTRUSTED_PROXIES=1\n" in example
