"""The container and Kubernetes files agree with the code: they parse, name only real
settings and commands, probe the metrics port, give workers time to drain, and the alert
rules use only metrics that exist. (No Docker engine or cluster here: these are static.)"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailfleet.shared.cli import build_parser
from mailfleet.shared.durations import parse_duration
from mailfleet.shared.job import Lane
from mailfleet.shared.names import Names
from mailfleet.shared.settings import ENV_PREFIX, Settings, load_settings
from mailfleet.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
METRICS_PORT = Settings.model_fields["metrics_port"].default
SHUTDOWN_GRACE = Settings.model_fields["shutdown_grace"].default
# Settings that carry credentials: the Secret holds them, the ConfigMap everything else but
# UNSET_SETTINGS, which name a file that must be mounted first (configmap.yaml says how).
SECRET_SETTINGS = {
    "amqp_url",
    "redis_url",
    "smtp_relays",
    "smtp_username",
    "smtp_password",
    "webhooks",  # the endpoints' secrets
    "unsubscribe_secret",  # signs the one-click unsubscribe links
    "bounce_secret",
}
UNSET_SETTINGS = {
    "smtp_ca_file",
    "dkim_keys",
    "bounce_domain",
    "dashboard_token",
}  # the last: no worker reads it
# Metrics the RabbitMQ exporter provides (an assumption stated in alerts.yml).
EXPORTER_METRICS = {"rabbitmq_queue_messages_ready"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path.name, document


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in _k8s_documents() if document["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    [document] = _k8s(kind)
    return document


def _pod_specs() -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in _k8s("Deployment") + _k8s("Job")]


def _worker_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _mailfleet_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the image built from deploy/Dockerfile."""
    return {
        name: service
        for name, service in _compose()["services"].items()
        if "build" in service and service["build"]["dockerfile"] == "deploy/Dockerfile"
    }


def _dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in joined.splitlines()
        if line.strip()
    ]


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _dockerfile_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, arguments in _dockerfile():
        if name == "ENV":
            found.update(item.partition("=")[::2] for item in shlex.split(arguments))
    return found


def _clean_environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key in os.environ:
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def _mailfleet_variables() -> Iterator[tuple[str, str]]:
    """``(where, variable)`` for every MAILFLEET_* variable any deploy file sets."""
    for name, service in _compose()["services"].items():
        for key in _environment(service):
            yield f"docker-compose.yml:{name}", key
    for file, document in _k8s_documents():
        for key in (document.get("data") or {}) | (document.get("stringData") or {}):
            yield file, key
    for spec in _pod_specs():
        for container in spec["containers"]:
            for item in container.get("env", []):
                yield container["name"], item["name"]
    for key in _dockerfile_env():
        yield "deploy/Dockerfile", key


class TestFilesParse:
    def test_compose_manifests_and_alerts_parse(self) -> None:
        """Every YAML file parses and every manifest names its apiVersion, kind and name."""
        assert "services" in _compose()
        assert "groups" in yaml.safe_load(ALERTS.read_text())
        documents = list(_k8s_documents())
        assert documents
        for file, document in documents:
            assert {"apiVersion", "kind"} <= set(document), file
            if document["kind"] != "Kustomization":
                assert document["metadata"]["name"], file

    def test_kustomization_lists_every_manifest_but_the_secret_template(self) -> None:
        """The kustomization applies every manifest here, except the secret template."""
        resources = set(_one("Kustomization")["resources"])
        present = {path.name for path in K8S.glob("*.yaml")}
        assert present - {"kustomization.yaml", "secret.template.yaml"} == resources

    def test_demo_jobs_are_valid(self) -> None:
        """Every line of the compose demo's jobs file is a valid job."""
        from mailfleet.producer.jsonlines import read_jobs
        from mailfleet.shared.job import DEFAULT_LIMITS

        with (DEPLOY / "demo" / "jobs.jsonl").open() as lines:
            jobs, problems = read_jobs(lines, DEFAULT_LIMITS)
        assert ([], True) == (problems, len(jobs) > 0)


class TestSettings:
    def test_every_mailfleet_variable_is_a_setting(self) -> None:
        """Each MAILFLEET_* variable the deploy files set is a field of Settings."""
        unknown = [
            (where, key)
            for where, key in _mailfleet_variables()
            if key.startswith(ENV_PREFIX)
            and key.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields
        ]
        assert [] == unknown

    def test_configmap_holds_every_setting_but_the_secret_ones(self) -> None:
        """The ConfigMap sets every non-secret setting; the Secret template the secret ones."""
        configmap = {key.removeprefix(ENV_PREFIX).lower() for key in _one("ConfigMap")["data"]}
        secret = {key.removeprefix(ENV_PREFIX).lower() for key in _one("Secret")["stringData"]}
        assert set(Settings.model_fields) - SECRET_SETTINGS - UNSET_SETTINGS == configmap
        assert SECRET_SETTINGS == secret
        comments = (K8S / "configmap.yaml").read_text()
        for name in UNSET_SETTINGS:
            assert f"{ENV_PREFIX}{name.upper()}" in comments

    def test_configmap_and_secret_values_load(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The Kubernetes values are valid settings (no ConfigError at worker start)."""
        _clean_environment(monkeypatch, _one("ConfigMap")["data"] | _one("Secret")["stringData"])

        settings = load_settings()

        assert settings.shutdown_grace < settings.max_age

    @pytest.mark.parametrize("service", ["worker", "publisher", "declare"])
    def test_compose_values_load(self, monkeypatch: pytest.MonkeyPatch, service: str) -> None:
        """Each compose service's settings load and send to Mailpit in plain SMTP, as it speaks."""
        _clean_environment(monkeypatch, _environment(_compose()["services"][service]))

        settings = load_settings()

        assert [("mailpit:1025", False)] == [
            (relay.name, relay.uses_starttls) for relay in settings.smtp_relays
        ]


class TestPorts:
    def test_worker_probes_and_ports_use_the_metrics_port(self) -> None:
        """Container port, probes, Service and scrape annotation all use the default port."""
        container = _worker_container()
        named = {port["name"]: port["containerPort"] for port in container["ports"]}
        probes = {
            kind: container[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        template = _one("Deployment")["spec"]["template"]
        [service_port] = _one("Service")["spec"]["ports"]

        assert {"metrics": METRICS_PORT} == named
        assert {METRICS_PORT} == {named.get(p["port"], p["port"]) for p in probes.values()}
        assert ("/healthz", "/readyz") == (
            probes["livenessProbe"]["path"],
            probes["readinessProbe"]["path"],
        )
        assert METRICS_PORT == service_port["port"]
        assert str(METRICS_PORT) == template["metadata"]["annotations"]["prometheus.io/port"]
        assert str(METRICS_PORT) == _one("ConfigMap")["data"]["MAILFLEET_METRICS_PORT"]

    def test_compose_and_image_use_the_metrics_port(self) -> None:
        """The image exposes and health-checks the port; compose probes /readyz on it."""
        worker = _compose()["services"]["worker"]
        runtime = _runtime_stage()

        assert [str(METRICS_PORT)] == [args for name, args in runtime if name == "EXPOSE"]
        assert str(METRICS_PORT) == _dockerfile_env()["MAILFLEET_METRICS_PORT"]
        assert str(METRICS_PORT) == _environment(worker)["MAILFLEET_METRICS_PORT"]
        assert f"127.0.0.1:{METRICS_PORT}/readyz" in " ".join(worker["healthcheck"]["test"])
        [healthcheck] = [args for name, args in runtime if name == "HEALTHCHECK"]
        assert "/healthz" in healthcheck
        assert f"'{METRICS_PORT}'" in healthcheck


class TestCommands:
    @staticmethod
    def _commands() -> Iterator[tuple[str, list[str]]]:
        for name, service in _mailfleet_services().items():
            yield f"compose {name}", [str(arg) for arg in service["command"]]
        for spec in _pod_specs():
            for container in spec["containers"]:
                command = container.get("command", [])
                assert command in ([], ["mailfleet"]), container["name"]
                yield f"k8s {container['name']}", container["args"]
        [cmd] = [args for name, args in _dockerfile() if name == "CMD"]
        yield "Dockerfile CMD", json.loads(cmd)

    def test_every_command_run_is_a_mailfleet_subcommand(self) -> None:
        """What compose, the manifests and the image run parses with `mailfleet`'s own parser."""
        parser = build_parser()
        commands = dict(self._commands())
        assert {"compose worker", "compose declare", "compose publisher", "k8s worker"} <= set(
            commands
        )
        for where, argv in commands.items():
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: `mailfleet {' '.join(argv)}` is not a valid command")

    def test_the_image_runs_mailfleet_worker_by_default(self) -> None:
        """ENTRYPOINT is mailfleet, CMD is worker, and the workers run `worker`."""
        instructions = dict(_runtime_stage())
        assert ["mailfleet"] == json.loads(instructions["ENTRYPOINT"])
        assert ["worker"] == json.loads(instructions["CMD"])
        assert ["worker"] == _worker_container()["args"]
        assert ["worker"] == _compose()["services"]["worker"]["command"]


class TestShutdown:
    def test_kubernetes_waits_longer_than_the_shutdown_grace(self) -> None:
        """terminationGracePeriodSeconds exceeds both the default and the configured grace."""
        period = _one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        configured = parse_duration(_one("ConfigMap")["data"]["MAILFLEET_SHUTDOWN_GRACE"])

        assert period > SHUTDOWN_GRACE
        assert period > configured

    def test_compose_waits_longer_than_the_shutdown_grace(self) -> None:
        """stop_grace_period exceeds the grace the workers are given."""
        worker = _compose()["services"]["worker"]
        grace = parse_duration(_environment(worker).get("MAILFLEET_SHUTDOWN_GRACE", "25s"))

        assert parse_duration(worker["stop_grace_period"]) > max(grace, SHUTDOWN_GRACE)


class TestContainers:
    def test_the_image_is_multi_stage_slim_and_non_root(self) -> None:
        """A builder stage makes wheels; the slim runtime runs as a numeric non-root user."""
        stages = [args for name, args in _dockerfile() if name == "FROM"]
        runtime = _runtime_stage()
        [user] = [args for name, args in runtime if name == "USER"]
        arguments = {a.split("=", 1)[0]: a.split("=", 1)[1] for n, a in _dockerfile() if n == "ARG"}

        assert len(stages) >= 2
        assert "python:3.11-slim" == arguments["PYTHON_IMAGE"]
        assert stages[-1].startswith("${PYTHON_IMAGE}")
        assert user.split(":")[0].isdigit()
        assert int(user.split(":")[0]) > 0
        assert not any("apt-get install" in args for _, args in runtime)

    def test_pods_run_non_root_with_a_read_only_root(self) -> None:
        """Every pod runs as non-root, read-only, without privilege escalation or capabilities."""
        for spec in _pod_specs():
            assert spec["securityContext"]["runAsNonRoot"] is True
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert ["ALL"] == context["capabilities"]["drop"]
                assert "memory" in container["resources"]["limits"]

    def test_dockerignore_keeps_what_the_image_copies(self) -> None:
        """Every path COPY takes from the build context survives .dockerignore; .venv does not."""
        patterns = [
            line.strip()
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]

        def ignored(path: str) -> bool:  # Docker: the last matching pattern wins
            result = False
            parents = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
            for pattern in patterns:
                negated = pattern.startswith("!")
                glob = pattern.lstrip("!").rstrip("/")
                if any(fnmatch(candidate, glob) for candidate in parents):
                    result = not negated
            return result

        copied = [
            source
            for name, args in _dockerfile()
            if name == "COPY" and "--from" not in args
            for source in args.split()[:-1]
        ]
        assert copied
        assert [] == [source for source in copied if ignored(source.rstrip("/") + "/x.py")]
        assert ignored(".venv/bin/python")
        assert ignored("tests/unit/test_job.py")

    def test_compose_brings_up_a_whole_fleet(self) -> None:
        """Three workers wait for healthy RabbitMQ, Redis and Mailpit, and send to Mailpit."""
        services = _compose()["services"]
        worker = services["worker"]
        conditions = {name: dep["condition"] for name, dep in worker["depends_on"].items()}

        assert 3 == worker["deploy"]["replicas"]
        assert {"rabbitmq", "redis", "mailpit"} <= {
            name for name, condition in conditions.items() if condition == "service_healthy"
        }
        assert "rabbitmq:3.13-management" == services["rabbitmq"]["image"]
        assert services["mailpit"]["image"].startswith("axllent/mailpit")
        for name in ("rabbitmq", "redis", "mailpit", "worker"):
            assert services[name]["healthcheck"]["test"], name
        assert "service_healthy" == services["publisher"]["depends_on"]["worker"]["condition"]


class TestAutoscaling:
    def test_keda_scales_on_the_lane_queues_of_the_configured_namespace(self) -> None:
        """Each trigger reads a lane queue of MAILFLEET_NAMESPACE by length, with secret auth."""
        names = Names(_one("ConfigMap")["data"]["MAILFLEET_NAMESPACE"])
        scaled = _one("ScaledObject")["spec"]
        auth = _one("TriggerAuthentication")
        secret_keys = set(_one("Secret")["stringData"])

        assert _one("Deployment")["metadata"]["name"] == scaled["scaleTargetRef"]["name"]
        assert {names.lane_queue(lane) for lane in Lane} == {
            trigger["metadata"]["queueName"] for trigger in scaled["triggers"]
        }
        for trigger in scaled["triggers"]:
            assert ("rabbitmq", "QueueLength") == (trigger["type"], trigger["metadata"]["mode"])
            assert auth["metadata"]["name"] == trigger["authenticationRef"]["name"]
        for reference in auth["spec"]["secretTargetRef"]:
            assert _one("Secret")["metadata"]["name"] == reference["name"]
            assert reference["key"] in secret_keys
        assert "replicas" not in _one("Deployment")["spec"]

    def test_the_disruption_budget_selects_the_workers(self) -> None:
        """The PodDisruptionBudget's selector matches the worker pods."""
        selector = _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
        labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


class TestAlerts:
    @staticmethod
    def _known_metrics() -> set[str]:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        metrics = WorkerMetrics()
        metrics.watch_relays(dict)
        return {
            family.name + suffix
            for family in metrics.registry.collect()
            for suffix in suffixes.get(family.type, [""])
        } | EXPORTER_METRICS

    def test_rules_use_only_metrics_that_exist(self) -> None:
        """Every metric an alert mentions is one the workers or the exporter publish."""
        known = self._known_metrics()
        rules = [
            rule
            for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]
        ]
        mentioned = {
            name
            for rule in rules
            for name in re.findall(r"\b(?:mailfleet|rabbitmq)_[a-z_]+\b", json.dumps(rule))
        }
        assert {"mailfleet_jobs_total", "mailfleet_ready"} <= mentioned
        assert set() == mentioned - known

    def test_the_required_alerts_are_there_with_severity_and_summary(self) -> None:
        """Dead letters, a stuck lane, retries and unready workers alert, each with a summary."""
        groups = yaml.safe_load(ALERTS.read_text())["groups"]
        rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}

        assert {
            "MailfleetDeadLetterQueueGrowing",
            "MailfleetLaneStuck",
            "MailfleetRetryRateHigh",
            "MailfleetWorkerNotReady",
        } <= set(rules)
        for name, rule in rules.items():
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
            assert rule["annotations"]["summary"], name
