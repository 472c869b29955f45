"""Prometheus metrics (prometheus-client), on one registry owned by the daemon (no module globals).

Served on ``[metrics] listen`` as ``/metrics``. Names follow Prometheus conventions (``_total`` counters,
``_seconds`` units). ``Metrics`` is also the engine's ``engine.observer.FlowObserver``: the deposit service
counts each deposit and the worker pool each verdict, where they happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from engine.model import FlowRecord


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.deposits = Counter("fluxdepot_deposits", "Accepted deposits.", ["channel"], registry=r)
        self.deposits_refused = Counter(
            "fluxdepot_deposits_refused", "Deposits refused at the door.", ["channel", "reason"], registry=r
        )
        self.flows_finished = Counter(
            "fluxdepot_flows_finished",
            "Flows that reached a status after processing.",
            ["status"],
            registry=r,
        )
        self.flows = Gauge("fluxdepot_flows", "Flows per current status.", ["status"], registry=r)
        self.processing = Histogram(
            "fluxdepot_processing_seconds",
            "Time from claim to verdict.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.queue_depth = Gauge("fluxdepot_queue_depth", "Flows waiting for or held by a worker.", registry=r)
        self.queue_oldest_age = Gauge(
            "fluxdepot_queue_oldest_age_seconds",
            "Age of the oldest flow in a non-final status.",
            ["status"],
            registry=r,
        )
        self.stuck_flows = Gauge(
            "fluxdepot_stuck_flows",
            "Flows older than the watchdog's age for their status.",
            ["status"],
            registry=r,
        )
        self.singletons = Gauge(
            "fluxdepot_singleton_held", "1 when this daemon runs the periodic singleton job.", ["name"], registry=r
        )
        self.sftp_sessions = Gauge("fluxdepot_sftp_sessions", "Open SFTP sessions.", registry=r)
        self.sftp_logins = Counter("fluxdepot_sftp_logins", "SFTP authentication outcomes.", ["result"], registry=r)
        self.webhook_attempts = Counter(
            "fluxdepot_webhook_attempts",
            "Webhook POSTs by outcome: delivered, retry (failed, tried again later), dead (retries exhausted).",
            ["outcome"],
            registry=r,
        )
        self.grpc_calls = Counter(
            "fluxdepot_grpc_calls", "gRPC calls by method and status code.", ["method", "code"], registry=r
        )

    # --- engine.observer.FlowObserver ------------------------------------------------------------
    def flow_deposited(self, flow: FlowRecord) -> None:
        self.deposits.labels(flow.channel.value).inc()

    def flow_judged(self, flow: FlowRecord, seconds: float) -> None:
        self.flows_finished.labels(flow.status.name).inc()
        self.processing.observe(seconds)

    def serve(self, listen: str) -> Any:
        """Start the /metrics HTTP endpoint in a background thread; returns the server (``shutdown()``)."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        return server
