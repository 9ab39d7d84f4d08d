"""The deployment files agree with the code.

Each file under ``deploy/`` is parsed (Dockerfiles line by line, YAML with ``yaml.safe_load``)
and checked against what the code understands: the variables of
:class:`ticket_urgency.settings.Settings`, the ``ticket-urgency serve`` flags, the extras of
``pyproject.toml``, the pins of ``requirements.lock``, the Dagster code location and the
``mlflow server`` options. Nothing is built or started.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from pydantic import AliasChoices

from ticket_urgency.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
API_DOCKERFILE = DEPLOY / "Dockerfile"
DAGSTER_DOCKERFILE = DEPLOY / "dagster" / "Dockerfile"
MLFLOW_DOCKERFILE = DEPLOY / "mlflow" / "Dockerfile"
CLOUDRUN = DEPLOY / "cloudrun" / "service.yaml"
HELM_VALUES = DEPLOY / "dagster" / "values.yaml"
MLFLOW_COMPOSE = DEPLOY / "mlflow" / "docker-compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCS = ROOT / "docs" / "deployment.md"

# The `serve` row of DESIGN.md's command table; used only while `serve` is not registered.
DESIGN_SERVE_FLAGS = {"--host", "--port", "--workers", "--poll-seconds"}
# Variables a ticket_urgency container may carry besides the Settings ones: the platform's,
# the interpreter's and those that third-party libraries read themselves.
THIRD_PARTY_ENV = re.compile(
    r"^(PORT|PATH|HOME|PYTHON[A-Z_]*|PIP_[A-Z_]+|GOOGLE_[A-Z_]+|NML_DISABLE_USAGE_LOGGING)$"
)
HEAVY = ("dagster", "nannyml", "statsmodels")
ENV_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


# ----------------------------------------------------------------------------- helpers


def settings_env_names() -> dict[str, str]:
    """Map every environment variable Settings reads to its field name."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names[choice.upper()] = field_name
        elif isinstance(alias, str):
            names[alias.upper()] = field_name
        else:
            names[f"{prefix}{field_name}".upper()] = field_name
    return names


def canonical_env_name(field_name: str) -> str:
    """The variable documented for a Settings field (the first alias, else prefix + name)."""
    field = Settings.model_fields[field_name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        assert isinstance(first, str)
        return first.upper()
    if isinstance(alias, str):
        return alias.upper()
    return f"{Settings.model_config.get('env_prefix', '')}{field_name}".upper()


def assert_known_env(names: set[str], where: str) -> None:
    """Every name is a Settings variable or a known third-party one."""
    accepted = settings_env_names()
    unknown = sorted(n for n in names if n not in accepted and not THIRD_PARTY_ENV.match(n))
    assert not unknown, f"{where} uses variables Settings does not understand: {unknown}"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction (continuation lines joined, comments dropped)."""

    keyword: str
    args: str
    stage: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Parse a Dockerfile into instructions, numbering build stages from 0."""
    out: list[Instruction] = []
    stage = -1
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last build stage (the image that ships)."""
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    """The instructions with ``keyword``."""
    return [i for i in instructions if i.keyword == keyword]


def command_argv(instruction: Instruction) -> list[str]:
    """The argv of a CMD in exec form, unwrapping ``sh -c "exec ..."``."""
    argv = json.loads(instruction.args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), "CMD in exec form"
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
        if argv and argv[0] == "exec":
            argv = argv[1:]
    return argv


def option_values(argv: list[str]) -> dict[str, str | None]:
    """``--flag value`` / ``--flag=value`` / bare ``--flag`` pairs of an argv."""
    opts: dict[str, str | None] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            if "=" in arg:
                key, value = arg.split("=", 1)
                opts[key] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                opts[arg] = argv[i + 1]
                i += 1
            else:
                opts[arg] = None
        i += 1
    return opts


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    """The argument lists of every ``pip install`` in RUN instructions."""
    found = []
    for run in only(instructions, "RUN"):
        for part in re.split(r"&&|;", run.args):
            tokens = shlex.split(part)
            if tokens[:2] == ["pip", "install"]:
                found.append(tokens[2:])
    return found


def requirement_tokens(args: list[str]) -> list[str]:
    """The requirement arguments of a pip install (flags and their values removed)."""
    reqs = []
    skip = False
    for tok in args:
        if skip:
            skip = False
        elif tok in ("-c", "-r", "--constraint", "--requirement"):
            skip = True
        elif not tok.startswith("-"):
            reqs.append(tok)
    return reqs


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """Variables set by ENV instructions (``KEY=value`` form)."""
    env: dict[str, str] = {}
    for ins in only(instructions, "ENV"):
        for pair in shlex.split(ins.args):
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {ins.args!r}: use KEY=value"
            env[key] = value
    return env


@cache
def lock_pins() -> dict[str, str]:
    """``name -> version`` of requirements.lock."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


@cache
def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def k8s_env(env: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, entry)`` of a Kubernetes ``env`` list."""
    for entry in env:
        yield entry["name"], entry


def serve_flags() -> tuple[set[str], str]:
    """The options of ``ticket-urgency serve`` and where they came from.

    Read from the typer app when the command is registered; otherwise DESIGN.md's list.
    """
    import typer.main

    from ticket_urgency.cli import app

    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    serve = commands.get("serve")
    if serve is None:
        return DESIGN_SERVE_FLAGS, "DESIGN.md"
    return {o for p in serve.params for o in (*p.opts, *p.secondary_opts)}, "typer app"


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Build Settings from exactly ``env`` (the test environment's own variables removed)."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def dockerignore_patterns() -> list[str]:
    """Patterns of the root .dockerignore."""
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@cache
def mlflow_cli_source() -> str:
    """Source of ``mlflow server``'s options (read, not imported: importing mlflow is slow)."""
    spec = importlib.util.find_spec("mlflow")
    assert spec is not None and spec.origin is not None
    pkg = Path(spec.origin).parent
    return "\n".join(
        p.read_text(encoding="utf-8")
        for p in (pkg / "cli" / "__init__.py", pkg / "utils" / "cli_args.py")
        if p.exists()
    )


# ----------------------------------------------------------------------------- API image


def test_api_dockerfile_is_multistage_python_311_slim() -> None:
    ins = parse_dockerfile(API_DOCKERFILE)
    args = {a.args.split("=", 1)[0]: a.args.split("=", 1)[1] for a in only(ins, "ARG")}
    froms = [f.args.split()[0] for f in only(ins, "FROM")]
    assert len(froms) >= 2, "multi-stage build"
    bases = {args.get(f.strip("${}"), f) if f.startswith("$") else f for f in froms}
    assert bases == {"python:3.11-slim"}
    assert any("--from=build" in c.args and "/opt/venv" in c.args for c in final_stage(ins))


def test_api_dockerfile_installs_only_the_serving_extra() -> None:
    ins = parse_dockerfile(API_DOCKERFILE)
    installs = pip_installs(ins)
    assert len(installs) == 1
    args = installs[0]
    assert requirement_tokens(args) == [".[serving]"], "only the project with its serving extra"
    assert "requirements.lock" in args[args.index("-c") + 1], "pinned by the lock"
    text = " ".join(f"{i.keyword} {i.args}" for i in ins).lower()
    for heavy in (*HEAVY, "pipeline", "[dev]", "[all]"):
        assert heavy not in text, f"the API image must not install {heavy}"
    # ...and the serving extra itself stays free of the heavy trees.
    serving = " ".join(pyproject()["project"]["optional-dependencies"]["serving"]).lower()
    assert not any(heavy in serving for heavy in HEAVY)
    # The lock pins what the constraint file is expected to pin.
    for dep in ("fastapi", "uvicorn", "mlflow", "google-cloud-storage"):
        assert dep in lock_pins()


def test_api_dockerfile_runs_as_non_root_and_probes_health() -> None:
    ins = parse_dockerfile(API_DOCKERFILE)
    last = final_stage(ins)
    users = only(last, "USER")
    assert users, "the final stage sets USER"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    assert any(user in r.args and "useradd" in r.args for r in only(last, "RUN"))
    assert [e.args for e in only(last, "EXPOSE")] == ["8080"]
    (health,) = only(last, "HEALTHCHECK")
    assert "/health" in health.args
    assert "urllib" in health.args and "curl" not in health.args, "slim has no curl"
    assert "'PORT', '8080'" in health.args, "probes the port the server listens on"


def test_api_cmd_uses_existing_serve_flags() -> None:
    ins = parse_dockerfile(API_DOCKERFILE)
    (cmd,) = only(final_stage(ins), "CMD")
    argv = command_argv(cmd)
    scripts = pyproject()["project"]["scripts"]
    assert argv[0] in scripts and scripts[argv[0]] == "ticket_urgency.cli:app"
    assert argv[1] == "serve"
    opts = option_values(argv[2:])
    flags, source = serve_flags()
    assert set(opts) <= flags, f"flags unknown to serve ({source}): {set(opts) - flags}"
    assert {"--host", "--port", "--poll-seconds"} <= set(opts)
    assert opts["--host"] == "0.0.0.0"
    assert opts["--port"] == "${PORT:-8080}", "Cloud Run's PORT, 8080 otherwise"
    assert opts["--poll-seconds"] == "${TICKET_URGENCY_POLL_SECONDS:-30}"


def test_api_dockerfile_env_names_are_understood() -> None:
    ins = parse_dockerfile(API_DOCKERFILE)
    names = set(env_of(ins))
    for i in ins:
        if i.keyword in ("CMD", "HEALTHCHECK", "RUN"):
            names |= set(ENV_REF.findall(i.args))
    names -= {a.args.split("=", 1)[0] for a in only(ins, "ARG")}
    assert_known_env(names, str(API_DOCKERFILE))


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, DAGSTER_DOCKERFILE, MLFLOW_DOCKERFILE])
def test_dockerfile_copies_exist_and_are_not_ignored(dockerfile: Path) -> None:
    patterns = dockerignore_patterns()
    for copy in only(parse_dockerfile(dockerfile), "COPY"):
        parts = [p for p in shlex.split(copy.args) if not p.startswith("--")]
        if "--from=" in copy.args:
            continue
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"{dockerfile}: COPY {src} does not exist"
            top = src.split("/")[0]
            assert top not in patterns, f"{dockerfile}: COPY {src} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = set(dockerignore_patterns())
    required = {".git", ".venv", "data", "demo", "mlflow.db", "tests", "notebooks", "mlruns"}
    assert required <= patterns


# ----------------------------------------------------------------------------- Cloud Run


def cloudrun_container() -> tuple[dict[str, Any], dict[str, Any]]:
    """(template, container) of the Cloud Run service."""
    svc = load_yaml(CLOUDRUN)
    assert svc["apiVersion"] == "serving.knative.dev/v1" and svc["kind"] == "Service"
    template = svc["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return template, container


def test_cloudrun_keeps_a_warm_instance_with_cpu_for_the_poll() -> None:
    template, _ = cloudrun_container()
    annotations = template["metadata"]["annotations"]
    min_scale = annotations["autoscaling.knative.dev/minScale"]
    assert isinstance(min_scale, str) and int(min_scale) >= 1
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"


def test_cloudrun_port_and_probes_match_the_image() -> None:
    _, container = cloudrun_container()
    exposed = int(only(parse_dockerfile(API_DOCKERFILE), "EXPOSE")[-1].args)
    assert [p["containerPort"] for p in container["ports"]] == [exposed]
    assert container["startupProbe"]["httpGet"] == {"path": "/ready", "port": exposed}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": exposed}


def test_cloudrun_env_is_understood_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _, container = cloudrun_container()
    env = dict(k8s_env(container["env"]))
    assert_known_env(set(env), str(CLOUDRUN))
    assert "PORT" not in env, "Cloud Run reserves PORT"
    token = env["TICKET_URGENCY_ADMIN_TOKEN"]
    assert "value" not in token and token["valueFrom"]["secretKeyRef"]["name"]
    plain = {n: e["value"] for n, e in env.items() if "value" in e}
    s = settings_from({**plain, "TICKET_URGENCY_ADMIN_TOKEN": "x"}, monkeypatch)
    assert s.storage.startswith("gs://")
    assert s.poll_seconds > 0, "every instance polls the registry"
    assert s.model_uri == plain["TICKET_URGENCY_MODEL_URI"]
    assert s.model_uri.startswith("models:/")
    # The serving image has no database driver: the registry is reached over HTTP(S).
    assert urlparse(s.mlflow_tracking_uri).scheme in ("http", "https")
    assert s.admin_token is not None


# ----------------------------------------------------------------------------- Dagster


def user_deployment() -> dict[str, Any]:
    """The single user-code deployment of the Helm values."""
    values = load_yaml(HELM_VALUES)
    uds = values["dagster-user-deployments"]
    assert uds["enabled"] is True and uds["enableSubchart"] is True
    (deployment,) = uds["deployments"]
    return deployment


def test_helm_values_run_the_dagster_project_module() -> None:
    deployment = user_deployment()
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "dagster_project"]
    assert pyproject()["tool"]["dagster"]["module_name"] == "dagster_project"
    assert importlib.util.find_spec("dagster_project") is not None
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # The image's own CMD serves the same module on the same port.
    ins = parse_dockerfile(DAGSTER_DOCKERFILE)
    argv = command_argv(only(final_stage(ins), "CMD")[-1])
    assert argv[:3] == ["dagster", "api", "grpc"]
    opts = option_values(argv[3:])
    assert opts["-m"] == "dagster_project"
    assert int(opts["-p"] or 0) == deployment["port"]
    assert [e.args for e in only(final_stage(ins), "EXPOSE")] == [str(deployment["port"])]


def test_helm_values_launcher_and_storage() -> None:
    values = load_yaml(HELM_VALUES)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"], "external Postgres for Dagster"
    assert values["global"]["postgresqlSecretName"]
    assert values["dagsterDaemon"]["enabled"] is True, "sensors and schedules need the daemon"


def test_helm_values_env_is_understood_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = user_deployment()
    env = dict(k8s_env(deployment["env"]))
    assert_known_env(set(env), str(HELM_VALUES))
    plain = {n: e["value"] for n, e in env.items() if "value" in e}
    s = settings_from(plain, monkeypatch)
    assert s.deployment == "gcs"
    assert s.storage.startswith("gs://")
    assert s.serving_url_list, "Dagster knows the serving URL(s) to reload"
    assert urlparse(s.mlflow_tracking_uri).scheme in ("http", "https")
    # The admin token arrives through a Secret whose keys the docs create.
    secret_names = {e["name"] for e in deployment["envSecrets"]}
    created = documented_secrets()
    for name in secret_names:
        assert name in created, f"docs/deployment.md does not create secret {name}"
        assert_known_env(created[name], f"secret {name}")
    assert any("TICKET_URGENCY_ADMIN_TOKEN" in created[n] for n in secret_names)


def test_dagster_image_installs_the_pipeline_extra_with_matching_k8s_libraries() -> None:
    ins = parse_dockerfile(DAGSTER_DOCKERFILE)
    (args,) = pip_installs(ins)
    reqs = requirement_tokens(args)
    assert reqs[0] == ".[pipeline]"
    assert "requirements.lock" in args[args.index("-c") + 1]
    libs = dict(r.split("==", 1) for r in reqs[1:])
    line = lock_pins()["dagster-gcp"]
    assert libs == {"dagster-k8s": line, "dagster-postgres": line}, "same release line"
    users = only(final_stage(ins), "USER")
    assert users and users[-1].args.split(":")[0] not in ("root", "0")
    names = set(env_of(ins)) - {a.args.split("=", 1)[0] for a in only(ins, "ARG")}
    assert_known_env(names, str(DAGSTER_DOCKERFILE))


def test_helm_chart_version_matches_the_locked_dagster() -> None:
    version = lock_pins()["dagster"]
    assert f"--version {version}" in HELM_VALUES.read_text(encoding="utf-8")
    assert f"--version {version}" in DOCS.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- MLflow


def assert_mlflow_server_argv(argv: list[str], where: str) -> dict[str, str | None]:
    """``argv`` is an ``mlflow server`` on PostgreSQL with proxied GCS artifacts."""
    assert argv[:2] == ["mlflow", "server"], where
    opts = option_values(argv[2:])
    source = mlflow_cli_source()
    for flag in opts:
        declared = re.search(r'["/]' + re.escape(flag) + r'["/]', source)
        assert declared, f"{where}: mlflow server has no option {flag}"
    assert (opts["--backend-store-uri"] or "").startswith(("postgresql://", "$"))
    assert opts["--artifacts-destination"] is not None
    assert "--serve-artifacts" in opts and opts["--serve-artifacts"] is None
    assert opts["--host"] == "0.0.0.0"
    return opts


def test_mlflow_image_pins_the_locked_mlflow_and_serves_postgres_and_gcs() -> None:
    ins = parse_dockerfile(MLFLOW_DOCKERFILE)
    (args,) = pip_installs(ins)
    reqs = requirement_tokens(args)
    assert "requirements.lock" in args[args.index("-c") + 1]
    assert "mlflow" in reqs and "google-cloud-storage" in reqs, "versions from the lock"
    assert any(r.startswith("psycopg2") for r in reqs), "PostgreSQL driver"
    users = only(final_stage(ins), "USER")
    assert users and users[-1].args not in ("root", "0")
    argv = command_argv(only(ins, "CMD")[-1])
    opts = assert_mlflow_server_argv(argv, str(MLFLOW_DOCKERFILE))
    # Every variable the command reads is one `mlflow server` itself understands.
    refs = set(ENV_REF.findall(only(ins, "CMD")[-1].args)) - {"PORT"}
    source = mlflow_cli_source()
    for ref in refs:
        assert f'envvar="{ref}"' in source, f"mlflow server does not read {ref}"
    assert opts["--backend-store-uri"] == "$MLFLOW_BACKEND_STORE_URI"


def test_mlflow_compose_runs_the_server_on_postgres_with_gcs_artifacts() -> None:
    compose = load_yaml(MLFLOW_COMPOSE)
    services = compose["services"]
    mlflow = services["mlflow"]
    assert (ROOT / "deploy" / "mlflow" / mlflow["build"]["context"]).resolve() == ROOT
    assert (ROOT / mlflow["build"]["dockerfile"]).resolve() == MLFLOW_DOCKERFILE
    # Compose interpolates ${VAR:?message}; stand in a plain value before parsing URIs.
    argv = [re.sub(r"\$\{[^}]*\}", "VALUE", str(a)) for a in mlflow["command"]]
    opts = assert_mlflow_server_argv(argv, str(MLFLOW_COMPOSE))
    backend = urlparse(opts["--backend-store-uri"] or "")
    pg_env = services["postgres"]["environment"]
    assert backend.hostname == "postgres" and backend.username == pg_env["POSTGRES_USER"]
    assert backend.path.lstrip("/") == pg_env["POSTGRES_DB"]
    artifacts = opts["--artifacts-destination"] or ""
    assert artifacts.startswith("gs://") and artifacts.endswith("/mlflow"), "the bucket's mlflow/"
    source = mlflow_cli_source()
    for name in mlflow["environment"]:
        ok = name.startswith("GOOGLE_") or f'envvar="{name}"' in source
        assert ok, f"mlflow server does not read {name}"


# ----------------------------------------------------------------------------- docs


def documented_secrets() -> dict[str, set[str]]:
    """Kubernetes secrets the docs create: name -> keys (``--from-literal=KEY=...``)."""
    text = DOCS.read_text(encoding="utf-8").replace("\\\n", " ")
    secrets: dict[str, set[str]] = {}
    for m in re.finditer(r"kubectl\b[^\n]*?\bcreate\s+secret\s+generic\s+([\w.-]+)([^\n]*)", text):
        keys = set(re.findall(r"--from-literal=([A-Za-z_][A-Za-z0-9_-]*)=", m.group(2)))
        secrets.setdefault(m.group(1), set()).update(keys)
    return secrets


def env_table() -> dict[str, str]:
    """``variable -> default`` rows of the docs' configuration table."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*([^|]*)\|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip().strip("`")
    return rows


def documented_default(value: Any) -> str:
    """How the docs' table writes a Settings default."""
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    return str(value)


def test_docs_table_lists_every_setting_with_its_default() -> None:
    table = env_table()
    for field_name, field in Settings.model_fields.items():
        name = canonical_env_name(field_name)
        assert name in table, f"docs/deployment.md: add {name} to the configuration table"
        assert table[name] == documented_default(field.default), f"default of {name}"
    accepted = settings_env_names()
    third_party = {n for n in table if n not in accepted}
    assert_known_env(third_party, "docs/deployment.md table")


def test_every_project_variable_named_anywhere_in_deploy_exists() -> None:
    accepted = settings_env_names()
    files = [*sorted(DEPLOY.rglob("*")), DOCS]
    for path in (p for p in files if p.is_file()):
        for name in set(re.findall(r"\bTICKET_URGENCY_[A-Z0-9_]+", path.read_text("utf-8"))):
            assert name in accepted, f"{path.relative_to(ROOT)} names unknown variable {name}"
