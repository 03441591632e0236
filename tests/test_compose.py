"""The production stack file: no Docker engine runs here, so its structure is checked
against the code (services, health checks, the variables the settings read)."""

from __future__ import annotations

import re
import subprocess

import yaml

from common.settings import PROJECT_ROOT, Settings

COMPOSE_TEXT = (PROJECT_ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "actions", "bot")


def test_every_service_is_there_with_a_health_check_and_ordered_start() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "actions", "engine", "bot", "proxy"}
    for name in ("postgres", "redis", "actions", "engine", "bot"):
        assert SERVICES[name]["healthcheck"]["test"], name
    # the bot service takes messages while the engine loads (kept, then replayed): ready is /readyz
    assert SERVICES["bot"]["depends_on"]["engine"]["condition"] == "service_started"
    assert SERVICES["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(SERVICES["bot"]["healthcheck"]["test"])
    assert SERVICES["engine"]["depends_on"]["actions"]["condition"] == "service_healthy"
    assert SERVICES["actions"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"] == ["barri", "db", "upgrade"]
    assert SERVICES["proxy"]["depends_on"]["bot"]["condition"] == "service_healthy"
    assert set(COMPOSE["volumes"]) == {"postgres-data", "redis-data", "caddy-data"}


def test_images_are_built_from_files_in_the_project() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file(), name
    for name in ("engine", "proxy"):
        mounted = SERVICES[name]["volumes"][0].split(":")[0]
        assert (PROJECT_ROOT / mounted).is_file(), name


def test_the_app_reads_every_variable_the_stack_sets() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        for variable in SERVICES[name].get("environment", {}):
            assert variable in fields, f"{name} sets {variable}, which no setting reads"
    example = (PROJECT_ROOT / ".env.example").read_text()
    declared = set(re.findall(r"^#? ?([A-Z][A-Z_]+)=", example, re.MULTILINE))
    assert {"SECRET_KEY", "RASA_TOKEN", "POSTGRES_PASSWORD", "PUBLIC_HOST"} <= declared
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_TEXT))
    assert used <= declared, f"the stack reads {used - declared}, which .env.example does not name"
    assert declared - {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PUBLIC_HOST"} <= fields


# what each service may know: nothing else that is secret reaches it
SECRETS_OF = {
    "postgres": {"POSTGRES_PASSWORD"},
    "redis": set(),
    "migrate": {"POSTGRES_PASSWORD"},
    "actions": {"POSTGRES_PASSWORD", "RASA_TOKEN"},
    "engine": {"POSTGRES_PASSWORD", "RASA_TOKEN"},
    "bot": {"POSTGRES_PASSWORD", "RASA_TOKEN", "SECRET_KEY", "TELEGRAM_TOKEN"},
    "proxy": set(),
}
SECRET_VARIABLES = {"POSTGRES_PASSWORD", "RASA_TOKEN", "SECRET_KEY", "TELEGRAM_TOKEN", "TELEGRAM_WEBHOOK_SECRET"}


def test_each_service_gets_only_the_secrets_it_needs() -> None:
    assert set(SECRETS_OF) == set(SERVICES)
    for name, service in SERVICES.items():
        assert "env_file" not in service, f"{name} would get every secret of .env"
        environment = service.get("environment", {})
        assert isinstance(environment, dict), name
        given = {variable for variable in SECRET_VARIABLES
                 if any(f"${{{variable}" in str(value) for value in environment.values())}
        assert given == SECRETS_OF[name], name
    assert not re.search(r"(SECRET_KEY|PASSWORD|TOKEN)\s*:\s*[\"']?[A-Za-z0-9]{8,}", COMPOSE_TEXT)
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_no_secret_is_on_a_command_line() -> None:
    for name, service in SERVICES.items():
        command = " ".join(service.get("command", []) + service.get("entrypoint", []))
        assert "$" not in command and "--auth-token" not in command, name
    dockerfile = (PROJECT_ROOT / "deploy" / "engine.Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "nlu.serve"]' in dockerfile and "--auth-token" not in dockerfile


def test_only_the_tls_proxy_is_public_and_the_bot_listens_on_loopback() -> None:
    for name, service in SERVICES.items():
        if name not in ("bot", "proxy"):
            assert "ports" not in service, f"{name} must not be published"
    assert SERVICES["bot"]["ports"] == ["127.0.0.1:8080:8080"]
    assert Settings.model_fields["bot_port"].default == 8080
    assert SERVICES["proxy"]["ports"] == ["80:80", "443:443"]
    caddyfile = (PROJECT_ROOT / SERVICES["proxy"]["volumes"][0].split(":")[0]).read_text()
    assert "reverse_proxy bot:8080" in caddyfile
    bot = SERVICES["bot"]["environment"]
    # one proxy in front (Caddy) by default; a deployment that adds a load balancer sets 2
    assert bot["PUBLIC_URL"].startswith("https://") and bot["TRUSTED_PROXIES"] == "${TRUSTED_PROXIES:-1}"


def test_the_engine_sends_the_secret_to_the_action_server() -> None:
    endpoints = yaml.safe_load((PROJECT_ROOT / "deploy" / "engine-endpoints.yml").read_text())
    for name in ("action_endpoint", "nlg"):
        assert endpoints[name]["url"].startswith("http://actions:5055/")
        assert endpoints[name]["headers"] == {"Authorization": "Bearer ${RASA_TOKEN}"}
    credentials = yaml.safe_load((PROJECT_ROOT / "dialogues" / "credentials.yml").read_text())
    assert credentials == {"nlu.rest_channel.AuthenticatedRestInput": {"token": "${RASA_TOKEN}"}}


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


def _locked(name: str) -> dict[str, str]:
    lines = (PROJECT_ROOT / "requirements" / name).read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    return {package.lower().replace("_", "-"): version for package, version in pins.items()}


def test_the_app_locks_pin_every_dependency_and_agree() -> None:
    """make and CI install requirements/app-dev.lock, the app image requirements/app.lock: each
    pins every dependency pyproject.toml names, and the two agree on every shared version."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    run, dev = _locked("app.lock"), _locked("app-dev.lock")
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    for spec in project["dependencies"]:
        package = name.match(spec).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        assert package in run, f"{package} is not in requirements/app.lock (run `make lock`)"
    for spec in project["optional-dependencies"]["dev"]:
        package = name.match(spec).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        assert package in dev, f"{package} is not in requirements/app-dev.lock (run `make lock`)"
    assert {p: v for p, v in dev.items() if p in run} == run
    dockerfile = (PROJECT_ROOT / "deploy" / "app.Dockerfile").read_text()
    assert "pip install --no-cache-dir --no-deps -r requirements/app.lock" in dockerfile
