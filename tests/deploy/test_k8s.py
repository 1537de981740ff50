"""deploy/k8s: kustomize renders, every resource validates against its schema, and the
manifests agree with the settings, the worker's HTTP server and the alert/dashboard jobs.

* Built-in kinds: ``kubernetes-validate`` (PyPI; bundles the Kubernetes JSON schemas, so
  it works offline), strict mode (unknown fields are errors), for Kubernetes 1.30.
* KEDA and Prometheus Operator kinds: the CRDs' OpenAPI schemas as packaged by the npm
  ``@kubernetes-models/*`` packages, run by ``deploy/k8s/validate/validate-crds.mjs``
  (``npm ci --prefix deploy/k8s/validate``; ``.ci/run`` does it).
* Rendering: ``kustomize build`` or ``kubectl kustomize``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from tests.deploy.test_compose import _setting_env_names
from workers.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
VALIDATE_DIR = K8S / "validate"
KUSTOMIZATIONS = ("base", "overlays/secure")
KUBERNETES_VERSION = "1.30"
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
PROMETHEUS_JOBS = {"prodcat-classify", "prodcat-feedback", "prodcat-serve"}
PROCESSES = ("prodcat-classify", "prodcat-feedback", "prodcat-serve")


def _kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail("neither kustomize nor kubectl is installed: .ci/run installs one", pytrace=False)


@cache
def rendered(kustomization: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [*_kustomize_command(), str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _settings_map(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return dict(_one(docs, "ConfigMap", "prodcat-settings")["data"])


def _is_crd(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).startswith(CRD_GROUPS)


def validate_crds(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results of validate-crds.mjs: one {kind, name, errors} per document."""
    node = shutil.which("node")
    modules = VALIDATE_DIR / "node_modules" / "@kubernetes-models"
    if node is None or not modules.is_dir():
        message = (
            "CRD schemas not installed: run 'npm ci --prefix deploy/k8s/validate' "
            "(needs Node.js; .ci/run does it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    result = subprocess.run(
        [node, str(VALIDATE_DIR / "validate-crds.mjs")],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert isinstance(out, list) and len(out) == len(docs)
    return out


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_builtin_kinds_validate_strictly(kustomization: str) -> None:
    docs = rendered(kustomization)
    builtin = [d for d in docs if not _is_crd(d)]
    assert len(builtin) >= 8
    for doc in builtin:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {path}: {exc.message}")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_custom_resources_validate_against_their_crds(kustomization: str) -> None:
    crds = [d for d in rendered(kustomization) if _is_crd(d)]
    assert {d["kind"] for d in crds} >= {"ScaledObject", "PodMonitor"}
    for result in validate_crds(crds):
        assert not result["errors"], f"{result['kind']} {result['name']}: {result['errors']}"


def test_the_validators_reject_broken_resources() -> None:
    """Both validators can fail: a typo'd field and a wrong type are reported."""
    docs = rendered("base")
    deployment = json.loads(json.dumps(_one(docs, "Deployment", "prodcat-classify")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = (
        "/healthz"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = json.loads(json.dumps(_one(docs, "ScaledObject", "prodcat-classify")))
    scaled["spec"]["maxReplicaCount"] = "twelve"
    del scaled["spec"]["scaleTargetRef"]["name"]
    (result,) = validate_crds([scaled])
    assert any("maxReplicaCount" in e for e in result["errors"]), result
    assert any("name" in e for e in result["errors"]), result


# --------------------------------------------------------------------------- consistency


def test_settings_are_real_settings_and_secrets_are_secret() -> None:
    known = _setting_env_names()
    secret_names = {
        f"PRODCAT_{section}_{field}".upper()
        for section, info in Settings.model_fields.items()
        for field, sub in getattr(info.annotation, "model_fields", {}).items()
        if "SecretStr" in str(sub.annotation) or sub.annotation is SecretStr
    }
    assert "PRODCAT_REDIS_PASSWORD" in secret_names
    for kustomization in KUSTOMIZATIONS:
        docs = rendered(kustomization)
        config = _settings_map(docs)
        for var in config:
            assert var in known, f"{kustomization}: {var} is not a setting"
            assert var not in secret_names, f"{kustomization}: secret {var} in a ConfigMap"
        for secret in (d for d in docs if d["kind"] == "Secret"):
            for var in {**secret.get("data", {}), **secret.get("stringData", {})}:
                assert var in known, f"{kustomization}: {var} in a Secret is not a setting"


def test_configmap_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for kustomization in KUSTOMIZATIONS:
        for key in [k for k in os.environ if k.startswith("PRODCAT_")]:
            monkeypatch.delenv(key)
        for var, value in _settings_map(rendered(kustomization)).items():
            monkeypatch.setenv(var, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.metrics.host == "0.0.0.0", "pods must serve metrics beyond loopback"


@pytest.mark.parametrize("worker", PROCESSES)
def test_workers_probe_health_and_drain_in_time(worker: str) -> None:
    docs = rendered("base")
    config = _settings_map(docs)
    spec = _one(docs, "Deployment", worker)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config["PRODCAT_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    env_from = {next(iter(e.values()))["name"] for e in container["envFrom"]}
    names = {d["metadata"]["name"] for d in docs}
    assert {n for n in env_from if n.startswith("prodcat-settings")} <= names
    drain = float(config["PRODCAT_CLASSIFY_DRAIN_TIMEOUT_S"])
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= drain + pre_stop + 10, f"{worker}: grace {grace}s vs drain {drain}s"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_disruption_budgets_and_podmonitor_select_the_workers() -> None:
    docs = rendered("base")
    monitor = _one(docs, "PodMonitor", "prodcat")
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    relabel = endpoint["relabelings"][0]
    assert relabel["targetLabel"] == "job"
    for worker in PROCESSES:
        labels = _one(docs, "Deployment", worker)["spec"]["template"]["metadata"]["labels"]
        pdb = _one(docs, "PodDisruptionBudget", worker)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/name"] in selected
        container = _one(docs, "Deployment", worker)["spec"]["template"]["spec"]["containers"]
        assert endpoint["port"] in {p["name"] for p in container[0]["ports"]}
    # The job label becomes the pod's name label: the jobs the alerts and dashboard use.
    assert selected == PROMETHEUS_JOBS


def test_keda_scales_classify_on_its_group_lag_up_to_the_partitions() -> None:
    docs = rendered("base")
    config = _settings_map(docs)
    scaled = _one(docs, "ScaledObject", "prodcat-classify")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "prodcat-classify"
    _one(docs, "Deployment", scaled["scaleTargetRef"]["name"])
    # range assignment: one worker per partition number of the (co-partitioned) inputs
    assert scaled["maxReplicaCount"] == int(config["PRODCAT_KAFKA_PARTITIONS"])
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == config["PRODCAT_CLASSIFY_GROUP_ID"]
    assert meta["bootstrapServers"] == config["PRODCAT_KAFKA_BOOTSTRAP"]
    assert meta["allowIdleConsumers"] == "false"
    assert int(meta["activationLagThreshold"]) < int(meta["lagThreshold"])
    # The lag alert's threshold is the same "one second of a worker's work".
    rules = (REPO_ROOT / "deploy/prometheus/rules/prodcat-alerts.yml").read_text()
    assert f"> {meta['lagThreshold']}" in rules


def test_serve_is_exposed_on_its_api_port_and_scaled_on_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = rendered("base")
    config = _settings_map(docs)
    for var in list(os.environ):
        if var.startswith("PRODCAT_"):
            monkeypatch.delenv(var)
    for var, value in config.items():
        monkeypatch.setenv(var, value)
    serve = Settings(_env_file=None).serve  # type: ignore[call-arg]
    assert serve.host == "0.0.0.0", "the API must listen beyond loopback in a pod"
    deployment = _one(docs, "Deployment", "prodcat-serve")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == serve.port
    service = _one(docs, "Service", "prodcat-serve")["spec"]
    assert (
        service["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert {p["targetPort"] for p in service["ports"]} == {"http"}
    hpa = _one(docs, "HorizontalPodAutoscaler", "prodcat-serve")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "prodcat-serve"}  # fmt: skip
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert container["resources"]["requests"]["cpu"], "utilization needs a CPU request"
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config["PRODCAT_MODEL_STORE"] in mounts


def test_secure_overlay_passes_credentials_to_workers_and_keda() -> None:
    docs = rendered("overlays/secure")
    config = _settings_map(docs)
    assert config["PRODCAT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["PRODCAT_REDIS_URL"].startswith("rediss://")
    secret = _one(docs, "Secret", "prodcat-credentials")
    auth = _one(docs, "TriggerAuthentication", "prodcat-kafka")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"], "hashed Secret name not propagated"
        assert ref["key"] in secret["data"]
    for worker in PROCESSES:
        container = _one(docs, "Deployment", worker)["spec"]["template"]["spec"]["containers"][0]
        refs = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert refs == {secret["metadata"]["name"]}
    scaled = _one(docs, "ScaledObject", "prodcat-classify")["spec"]["triggers"][0]
    assert scaled["authenticationRef"]["name"] == "prodcat-kafka"
    assert scaled["metadata"]["bootstrapServers"] == config["PRODCAT_KAFKA_BOOTSTRAP"]


def test_retraining_cronjob_runs_the_image_script() -> None:
    docs = rendered("base")
    job = _one(docs, "CronJob", "prodcat-retrain")["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    (container,) = job["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("prodcat-train")
    assert container["command"] == ["prodcat-retrain"]
    dockerfile = (REPO_ROOT / "deploy/docker/Dockerfile").read_text()
    assert "COPY deploy/docker/retrain.sh /usr/local/bin/prodcat-retrain" in dockerfile
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = _settings_map(docs)
    assert config["PRODCAT_MODEL_STORE"] in mounts and config["PRODCAT_DATA_DIR"] in mounts
    assert mounts[config["PRODCAT_DATA_DIR"]].get("readOnly") is True


def test_canary_judge_cronjob_runs_one_judgement_with_the_store() -> None:
    from workers.cli.main import build_parser

    docs = rendered("base")
    job = _one(docs, "CronJob", "prodcat-canary-judge")["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    (container,) = job["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("prodcat:") or container["image"] == "prodcat"
    assert container["args"] == ["models", "judge", "--once"]
    args = build_parser().parse_args(container["args"])
    assert args.models_command == "judge" and args.once
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert _settings_map(docs)["PRODCAT_MODEL_STORE"] in mounts
    retrain = _one(docs, "CronJob", "prodcat-retrain")["spec"]["jobTemplate"]["spec"]
    (trainer,) = retrain["template"]["spec"]["containers"]
    assert trainer["args"] == ["--spec", "/etc/prodcat/retrain.spec"]
    mounts = {m["mountPath"]: m["name"] for m in trainer["volumeMounts"]}
    volumes = {v["name"]: v for v in retrain["template"]["spec"]["volumes"]}
    spec_map = volumes[mounts["/etc/prodcat"]]["configMap"]["name"]
    (config_map,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == spec_map
    ]
    spec = config_map["data"]["retrain.spec"]
    assert "ROLLOUT=canary" in spec, "the weekly model goes out as a canary"
    assert 'DATA="bigbasket cn_ecommerce_products"' in spec


def test_retrain_script_trains_exports_and_publishes(tmp_path: Path) -> None:
    """deploy/docker/retrain.sh with a stand-in prodcat that records its calls: the labels
    the feedback app wrote are dumped into the model store and passed to training."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "prodcat"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'if [ "$1" = train ]; then while [ $# -gt 0 ]; do\n'
        '  [ "$1" = --out ] && mkdir -p "$2/v7" && touch "$2/v7/manifest.json"; shift\n'
        "done; fi\n"
        'if [ "$1" = labels ] && [ -z "$NO_LABELS" ]; then\n'
        '  echo \'{"product_id": "p1"}\' > "$4"\n'
        "fi\n"
        'if [ "$1 $2" = "models list" ] && [ -n "$CANARY_RUNNING" ]; then\n'
        '  echo \'{"version": "v6", "role": "canary 10%"}\'\n'
        "fi\n"
        'if [ "$1 $2" = "models list" ] && [ -n "$LIVE" ]; then\n'
        '  echo \'{"version": "v5", "role": "live", "created_at": "x"}\'\n'
        "fi\n"
        'if [ "$1 $2" = "models gate" ] && [ -n "$REFUSE" ]; then exit 1; fi\n'
    )
    fake.chmod(0o755)
    store = tmp_path / "store"
    store.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PRODCAT_MODEL_STORE": str(store),
    }
    script = str(REPO_ROOT / "deploy/docker/retrain.sh")

    def retrain(*args: str, **extra: str) -> list[str]:
        before = len(calls.read_text().splitlines()) if calls.exists() else 0
        run = subprocess.run(
            ["sh", script, *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        return [*calls.read_text().splitlines()[before:], run.stdout]

    dump, train, export, publish, out = retrain(
        "--if-empty", "--live", "bigbasket", "cn_ecommerce_products"
    )
    assert dump.startswith(f"labels dump --out {store}/labels/labels-")
    (labels_file,) = (store / "labels").iterdir()
    assert train.startswith(
        f"train --data bigbasket --data cn_ecommerce_products --labels {labels_file} --out "
    )
    assert export.startswith("export ") and "/v7 --out " in export
    assert publish.startswith("publish ") and publish.endswith("/v7 --live")
    assert "1 labels from the feedback app" in out

    dump, train, *_, out = retrain("bigbasket", NO_LABELS="1")
    assert dump.startswith("labels dump ") and "--labels" not in train
    assert "no labels from the feedback app yet" in out
    assert len(list((store / "labels").iterdir())) == 1, "an empty dump was kept"

    train, *_ = retrain("--no-labels", "bigbasket")
    assert train.startswith("train --data bigbasket --out ")

    # --canary: published, then a share of the products; not while another canary runs
    listing, _dump, train, _export, publish, live, canary, out = retrain(
        "--canary", "0.1", "bigbasket"
    )
    assert listing == live == "models list --json"  # nothing live: no offline gate
    assert publish.startswith("publish ") and publish.endswith("/v7")
    assert canary == "models canary v7 --share 0.1"
    listing, out = retrain("--canary", "0.1", "bigbasket", CANARY_RUNNING="1")
    assert listing == "models list --json" and "a canary is being judged" in out
    # with a live version: its test rows and the recent corrections gate the canary
    *_, heldout, gate, canary, out = retrain("--canary", "0.1", "bigbasket", LIVE="1")
    assert heldout.startswith(f"heldout {store}/v5 --out ")
    labels_files = sorted((store / "labels").iterdir())
    assert gate.startswith("models gate v7 --holdout ")
    assert gate.endswith(f" --labels {labels_files[-1]}")
    assert canary == "models canary v7 --share 0.1"
    run = subprocess.run(
        ["sh", script, "--canary", "0.1", "bigbasket"],
        env={**env, "LIVE": "1", "REFUSE": "1"}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert run.returncode == 1 and "refused by the offline gate" in run.stderr
    assert not calls.read_text().splitlines()[-1].startswith("models canary")
    both = subprocess.run(
        ["sh", script, "--live", "--canary", "0.1", "bigbasket"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert both.returncode == 2 and "usage" in both.stderr

    # a spec file; the command line wins over it
    spec = tmp_path / "retrain.spec"
    spec.write_text(
        '# weekly\nDATA="bigbasket cn_ecommerce_products"\nLABELS=none\nROLLOUT=live\n'
        'TRAIN_FLAGS="--limit 20000"\n'
    )
    train, _export, publish, _out = retrain("--spec", str(spec))
    assert train.startswith(
        "train --limit 20000 --data bigbasket --data cn_ecommerce_products --out "
    )
    assert publish.endswith("/v7 --live")
    listing, train, *_, canary, _out = retrain(
        "--spec", str(spec), "--canary", "0.2", "myntra_styles"
    )
    assert listing == "models list --json"  # LABELS=none: no dump
    assert train.startswith("train --limit 20000 --data myntra_styles ")
    assert canary == "models canary v7 --share 0.2"
    spec.write_text("DATA=bigbasket\nLABELS=since-live\n")
    dump, *_ = retrain("--spec", str(spec))
    assert dump.endswith(" --since-live")
    for example in ("deploy/docker/retrain.spec", "deploy/k8s/base/retrain.spec"):
        *_, gate, canary, _out = retrain("--spec", str(REPO_ROOT / example), LIVE="1")
        assert gate.startswith("models gate v7 --holdout ") and " --min-fixed 0.5" in gate
        assert canary == "models canary v7 --share 0.1"
    for text, why in (
        ("DATA=bigbasket\nDATASET=x\n", "line 2: unknown key DATASET"),
        ("DATA=bigbasket\nLABELS=some\n", "LABELS must be all, since-live or none"),
        ("bigbasket\n", "line 1: expected KEY=VALUE"),
    ):
        spec.write_text(text)
        bad = subprocess.run(
            ["sh", script, "--spec", str(spec)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert bad.returncode == 2 and why in bad.stderr, bad.stderr

    # `prodcat retrain` runs the same script with the same flags
    before = len(calls.read_text().splitlines())
    via_cli = subprocess.run(
        [sys.executable, "-m", "workers.cli", "retrain", "--no-labels", "bigbasket"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT,
    )  # fmt: skip
    assert via_cli.returncode == 0, via_cli.stderr
    assert calls.read_text().splitlines()[before].startswith("train --data bigbasket --out ")

    # --if-empty: a store with labels but no bundle is still empty; one with a bundle is not
    (store / "v1").mkdir()
    (store / "v1" / "manifest.json").touch()
    (out,) = retrain("--if-empty", "bigbasket")
    assert "keeping it" in out
