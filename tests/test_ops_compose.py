"""compose/monitoring.yml overrides every node and router service with the metrics settings,
and both process kinds take their metrics defaults from those environment variables."""

from __future__ import annotations

import os

import pytest

from node.ops.metrics import ENV_HOST, ENV_PORT

SERVICES = [*(f"config-{i}" for i in (1, 2, 3)), *(f"shard{k}-{i}" for k in (1, 2)
                                                   for i in (1, 2, 3)),
            "router-1", "router-2"]


def test_the_override_sets_the_metrics_env_on_every_process() -> None:
    yaml = pytest.importorskip("yaml")
    path = os.path.join(os.path.dirname(__file__), "..", "compose", "monitoring.yml")
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    services = doc["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert env == {ENV_PORT: "9216", ENV_HOST: "0.0.0.0"}, name
        assert set(services[name]) <= {"environment", "ports"}, name  # an override only
    assert services["grafana"]["profiles"] == ["grafana"]
    assert services["prometheus"]["build"]["dockerfile"] == "Dockerfile.prometheus"
    assert "--targets" in " ".join(services["targets"]["command"])


def test_node_and_router_take_metrics_defaults_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from node.server.config import config_from_args
    from router.config import config_from_args as router_args

    monkeypatch.setenv(ENV_PORT, "9301")
    monkeypatch.setenv(ENV_HOST, "0.0.0.0")
    node = config_from_args(["--id", "1", "--listen", "127.0.0.1:7001"])
    assert (node.metrics_port, node.metrics_host) == (9301, "0.0.0.0")
    flag = config_from_args(["--id", "1", "--listen", "127.0.0.1:7001", "--metrics-port",
                             "9400", "--slowms", "5"])
    assert (flag.metrics_port, flag.slowms) == (9400, 5)
    router = router_args(["--configdb", "cfg/127.0.0.1:1", "--listen", "127.0.0.1:2"])
    assert (router.metrics_port, router.metrics_host, router.slowms) == (9301, "0.0.0.0", 100)
    monkeypatch.delenv(ENV_PORT)
    monkeypatch.delenv(ENV_HOST)
    assert config_from_args(["--id", "1", "--listen", "127.0.0.1:7001"]).metrics_port is None
    assert router_args(["--configdb", "c/h:1", "--listen", "h:2"]).metrics_host == "127.0.0.1"
