"""A real Prometheus server for the devnet and the end-to-end tests (Debian's `prometheus` package).

`PrometheusServer(targets, rules)` writes a config that scrapes every role's `/metrics` each
second under `job="relay"` (with a `role` label) and evaluates the project's alert rules, starts
`prometheus` on a free loopback port with its storage in a folder of ours, and offers `query()` and
`alerts()` over the HTTP API. It stops only the process it started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError, TransientError
from relay.tools.processes import PROJECT_ROOT

ALERT_RULES = PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
READY_TIMEOUT_SECONDS = 30.0


def find_prometheus() -> str:
    """Path of the prometheus binary; `ConfigurationError` telling how to install it if missing."""
    path = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if path is None:
        raise ConfigurationError(
            "prometheus is not installed (run `make tools`, which installs Debian's package)"
        )
    return path


class PrometheusServer:
    """One Prometheus process scraping `targets` ({role name: "host:port"})."""

    def __init__(
        self,
        targets: Mapping[str, str],
        workdir: Path,
        *,
        rules: Path | None = ALERT_RULES,
        scrape_interval: str = "1s",
        port: int | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.workdir = workdir
        self.rules = rules
        self.scrape_interval = scrape_interval
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the web UI and HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """Write prometheus.yml: one job `relay`, a static target per role, the alert rules."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "relay",
                    "static_configs": [
                        {"targets": [address], "labels": {"role": name}}
                        for name, address in sorted(self.targets.items())
                    ],
                }
            ],
        }
        if self.rules is not None:
            config["rule_files"] = [str(self.rules)]
        path = self.workdir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        return path

    def start(self) -> PrometheusServer:
        """Start the server and wait until it is ready."""
        from adapters.evm.anvil import find_free_port

        binary = find_prometheus()
        config = self.write_config()
        self.port = self.port or find_free_port()
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigurationError(
                    "prometheus exited at start", log=str(self.workdir / "prometheus.log")
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TransientError("prometheus did not become ready", url=self.url)

    def stop(self) -> None:
        """Terminate the process this object started (kill after 5 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise TransientError("prometheus query failed", path=path, body=body)
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (each item has `metric` and `value`)."""
        data = self._get("/api/v1/query", {"query": promql})
        return list(data["result"])

    def scalar(self, promql: str) -> float | None:
        """The single value of an instant query, or None when it returns no series."""
        result = self.query(promql)
        if not result:
            return None
        return float(result[0]["value"][1])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending or firing) with their labels and state."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def targets_up(self) -> dict[str, bool]:
        """{role: up} as Prometheus last scraped it."""
        return {
            item["metric"].get("role", "?"): item["value"][1] == "1" for item in self.query('up{job="relay"}')
        }
