"""docker-compose.yml stays consistent with the repo, the settings and Prometheus.

Docker is not needed: the file is read as YAML and checked against what it refers to.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from workers.cli.main import build_parser
from workers.core.environment import unknown_variables
from workers.core.settings import Settings, load_settings, setting_variables

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"
RETRAIN_SCRIPT = REPO_ROOT / "deploy" / "docker" / "retrain.sh"
PROMETHEUS_FILE = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
WORKERS = ("classify", "feedback", "serve", "clicks")
INTERPOLATION = re.compile(r"\$\{[^}]*\}")
# The source part of a short volume spec: up to the first ":" outside ${...}.
VOLUME_SOURCE = re.compile(r"^(?:\$\{[^}]*\}|[^:])*")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): str(v) for k, v in env.items()}


def _setting_env_names() -> set[str]:
    """Every PRODCAT_* variable Settings reads: top-level fields and section fields."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(f"PRODCAT_{name}_{sub}".upper() for sub in annotation.model_fields)
        else:
            names.add(f"PRODCAT_{name}".upper())
    return names


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source = str(volume.get("source", ""))
        else:
            match = VOLUME_SOURCE.match(volume)
            source = match.group(0) if match else volume
        if source.startswith((".", "/", "$", "~")):
            sources.append(source)
    return sources


def test_services_are_all_there(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka", "redis", "prometheus", "grafana", "model-init", "demo-producer"}
    assert expected | set(WORKERS) <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:3.9.2"
    assert str(services["redis"]["image"]).startswith("redis:7")
    for name in ("kafka", "redis"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_classify_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    classify = services["classify"]
    assert "container_name" not in classify
    assert "ports" not in classify, "a fixed host port would stop `--scale classify=N`"


def test_referenced_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} missing"
            if isinstance(build, dict) and "dockerfile" in build:
                dockerfile = context / build["dockerfile"]
                assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for source in _bind_sources(service):
            if INTERPOLATION.search(source):
                # Set by the user (e.g. the data folder, which is never in the repo).
                continue
            path = (REPO_ROOT / source).resolve()
            assert REPO_ROOT in path.parents, f"{name}: {source} points outside the repo"
            assert path.exists(), f"{name}: {source} does not exist in the repo"


def test_every_prodcat_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = _setting_env_names()
    for name, service in services.items():
        for var in _environment(service):
            if var.startswith("PRODCAT_"):
                assert var in known, (
                    f"{name}: {var} is not a field of workers.core.settings.Settings"
                )


def test_workers_reach_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    advertised = _environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    internal = {url.split("://", 1)[1] for url in advertised.split(",")}
    for name in (*WORKERS, "model-init", "demo-producer"):
        env = _environment(services[name])
        assert env["PRODCAT_KAFKA_BOOTSTRAP"] in internal, name
        host = env["PRODCAT_REDIS_URL"].split("://", 1)[1].split(":", 1)[0]
        assert host in services, f"{name}: Redis host {host!r} is not a compose service"


def test_prometheus_scrapes_the_workers_metrics_port(services: dict[str, dict[str, Any]]) -> None:
    scraped: dict[str, int] = {}
    for job in _load(PROMETHEUS_FILE)["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                scraped[host] = int(sd["port"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                scraped[host] = int(port)
    for name in WORKERS:
        assert name in scraped, f"prometheus.yml does not scrape {name}"
        env = _environment(services[name])
        port = int(env["PRODCAT_METRICS_PORT"])
        assert scraped[name] == port, f"{name}: metrics on {port}, scraped on {scraped[name]}"
        assert env["PRODCAT_METRICS_HOST"] == "0.0.0.0", f"{name}: metrics bound to loopback"
        assert str(port) in [str(p) for p in services[name].get("expose", [])]
    for host in scraped:
        assert host == "localhost" or host in services, f"prometheus scrapes unknown {host}"


def test_grafana_is_provisioned(services: dict[str, dict[str, Any]]) -> None:
    datasources = _load(REPO_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")
    url = datasources["datasources"][0]["url"]
    assert url.split("//", 1)[1].split(":", 1)[0] in services
    dashboards = REPO_ROOT / "deploy/grafana/dashboards/prodcat.json"
    assert dashboards.is_file()
    assert yaml.safe_load(dashboards.read_text(encoding="utf-8"))["uid"]


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", str(text))
    assert match, f"not a compose duration: {text!r}"
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    """Every `service_healthy` dependency has a healthcheck; workers wait for the model."""
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}: no check"
            if spec["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"
    for name in WORKERS:
        depends = services[name]["depends_on"]
        assert depends["model-init"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == depends["redis"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_workers_healthcheck_and_drain(services: dict[str, dict[str, Any]]) -> None:
    drain = Settings().classify.drain_timeout_s
    for name in WORKERS:
        service = services[name]
        port = _environment(service)["PRODCAT_METRICS_PORT"]
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in check, f"{name}: healthcheck misses /healthz"
        assert _seconds(service["stop_grace_period"]) > drain, f"{name}: SIGKILL before drain"


def test_model_init_runs_the_retrain_script(services: dict[str, dict[str, Any]]) -> None:
    init = services["model-init"]
    assert init["entrypoint"] == ["prodcat-retrain"]
    assert "--if-empty" in init["command"]
    dockerfile = (REPO_ROOT / "deploy/docker/Dockerfile").read_text(encoding="utf-8")
    assert "COPY deploy/docker/retrain.sh /usr/local/bin/prodcat-retrain" in dockerfile
    assert (REPO_ROOT / "deploy/docker/retrain.sh").is_file()


def test_the_loop_runs_in_compose(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose run --rm retrain` makes a canary; canary-judge decides on it."""
    retrain = services["retrain"]
    assert retrain["profiles"] == ["retrain"], "the retraining runs on demand, not on `up`"
    assert retrain["entrypoint"] == ["prodcat-retrain"]
    assert retrain["command"] == ["--spec", "/etc/prodcat/retrain.spec"]
    assert "./deploy/docker/retrain.spec:/etc/prodcat/retrain.spec:ro" in retrain["volumes"]
    assert "ROLLOUT=canary" in (REPO_ROOT / "deploy/docker/retrain.spec").read_text()
    judge = services["canary-judge"]
    assert judge["command"] == ["models", "judge"]
    env = _environment(judge)
    assert env["PRODCAT_MODEL_STORE"] in {v.split(":")[1] for v in judge["volumes"]}


def test_prometheus_rule_files_are_mounted(services: dict[str, dict[str, Any]]) -> None:
    """rule_files, resolved inside the container, land on files of the repo."""
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_dir = Path(config_arg.split("=", 1)[1]).parent
    mounts = {}
    for volume in prometheus["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[Path(target)] = REPO_ROOT / source
    rule_files = _load(PROMETHEUS_FILE)["rule_files"]
    assert rule_files, "prometheus.yml loads no rules"
    for pattern in rule_files:
        inside = config_dir / pattern
        host = next(
            (
                src / inside.relative_to(dst)
                for dst, src in mounts.items()
                if inside.is_relative_to(dst)
            ),
            None,
        )
        assert host is not None and host.is_file(), f"{inside} is not mounted from the repo"


def _image_entrypoint() -> list[str]:
    """The prodcat image's ENTRYPOINT and CMD (exec form)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    found = {}
    for key in ("ENTRYPOINT", "CMD"):
        match = re.search(rf"^{key} (\[.*\])$", text, re.MULTILINE)
        assert match, f"{DOCKERFILE}: no {key} in exec form"
        found[key] = yaml.safe_load(match.group(1))
    assert found["ENTRYPOINT"] == ["prodcat"]
    return list(found["CMD"])


def _retrain_lines(args: list[str]) -> Iterator[list[str]]:
    """The ``prodcat`` command lines of retrain.sh run with ``args``: ``"$@"`` becomes the
    datasets as ``--data`` flags, ``$live`` the ``--live`` flag, other variables a path."""
    datasets = [a for a in args if not a.startswith("-")]
    assert datasets, f"prodcat-retrain {args}: no dataset"
    for line in RETRAIN_SCRIPT.read_text(encoding="utf-8").splitlines():
        if not re.match(r"\s*prodcat\s", line):
            continue
        argv: list[str] = []
        for token in shlex.split(line.split("#", 1)[0])[1:]:
            if token == "$@":
                argv += [flag for d in datasets for flag in ("--data", d)]
            elif token == "$live":
                argv += ["--live"] if "--live" in args else []
            elif token in ("$CANARY_SHARE", "$MIN_FIXED"):
                argv.append("0.1")
            elif token == "$labels_args":
                argv += ["--labels", "/tmp/labels.jsonl"]
            elif token.startswith("$"):
                argv.append("/tmp/prodcat-retrain")
            else:
                argv.append(token)
        yield argv


def _prodcat_command_lines(
    services: dict[str, dict[str, Any]],
) -> Iterator[tuple[str, list[str]]]:
    """(service, argv after ``prodcat``) of every prodcat command a service runs."""
    default = _image_entrypoint()
    for name, service in services.items():
        if not str(service.get("image", "")).startswith("prodcat"):
            continue
        command = [str(a) for a in service.get("command", default)]
        entrypoint = service.get("entrypoint")
        if entrypoint is None:
            yield name, command
        elif entrypoint == ["prodcat-retrain"]:
            for argv in _retrain_lines(command):
                yield f"{name} (prodcat-retrain)", argv
        else:
            pytest.fail(f"{name}: entrypoint {entrypoint} is neither prodcat nor prodcat-retrain")


def test_every_prodcat_command_parses(services: dict[str, dict[str, Any]]) -> None:
    """Each command line a service runs is accepted by the real ``prodcat`` parser (an
    unknown flag, such as the ``demo --producer-only`` that did not exist, exits 2)."""
    lines = list(_prodcat_command_lines(services))
    names = {name.split(" ")[0] for name, _ in lines}
    assert {"classify", "feedback", "demo-producer", "model-init"} <= names
    parser = build_parser()
    for name, argv in lines:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 0 and argv == ["--help"], f"{name}: `prodcat {shlex.join(argv)}`"


def test_demo_producer_replays_into_the_served_topics(services: dict[str, dict[str, Any]]) -> None:
    producer = services["demo-producer"]
    args = build_parser().parse_args([str(a) for a in producer["command"]])
    assert args.command == "demo" and args.producer_only
    # the live model it replays held-out rows of: the store and the model it waits for
    assert "models:/models" in producer["volumes"]
    assert producer["depends_on"]["model-init"]["condition"] == "service_completed_successfully"
    env = _environment(producer)
    for worker in WORKERS:
        assert (
            _environment(services[worker])["PRODCAT_KAFKA_BOOTSTRAP"]
            == (env["PRODCAT_KAFKA_BOOTSTRAP"])
        )


def test_every_service_environment_is_valid_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each prodcat service's environment loads (URLs and all) and names no unknown
    PRODCAT_* variable."""
    for name, service in services.items():
        env = {k: v for k, v in _environment(service).items() if k.startswith("PRODCAT_")}
        if not env:
            continue
        with monkeypatch.context() as patch:
            for var in [k for k in os.environ if k.startswith("PRODCAT_")]:
                patch.delenv(var)
            for key, value in env.items():
                patch.setenv(key, INTERPOLATION.sub("/data", value))
            load_settings()
        assert unknown_variables(setting_variables(), env) == [], name
