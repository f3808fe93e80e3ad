"""The daemon's Prometheus metrics, in a registry of its own (so tests can run several daemons)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.mentions_ingested = Counter(
            "listener_mentions_ingested", "Mentions received from sources (before dedupe).", ["platform"], registry=r)
        self.mentions_scored = Counter(
            "listener_mentions_scored", "New mentions stored and scored.", ["platform"], registry=r)
        self.alerts = Counter(
            "listener_alerts", "Alert messages produced, by rule, severity and status.",
            ["rule", "severity", "status"], registry=r)
        self.outbox_pending = Gauge(
            "listener_outbox_pending", "Alert messages waiting in the outbox for the broker.", registry=r)
        self.publish_latency = Histogram(
            "listener_publish_latency_seconds", "Time from an alert being queued to the broker's PUBACK.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r)
        self.source_errors = Counter(
            "listener_source_errors", "Failed polls, by platform and watch.", ["platform", "watch"], registry=r)
        self.poll_duration = Histogram(
            "listener_poll_duration_seconds", "Time one poll (fetch and ingest) took.", ["platform"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.rule_evaluation = Histogram(
            "listener_rule_evaluation_seconds", "Time the rule engine took for one batch.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1), registry=r)
        self.rules_loaded = Gauge("listener_rules_loaded", "Rules currently running.", registry=r)
        self.rule_reload_failures = Counter(
            "listener_rule_reload_failures", "Rule reloads rejected because a file did not validate.", registry=r)
        self.up = Gauge("listener_component_up", "1 when a daemon component is running.", ["component"], registry=r)

    def track_outbox(self, depth: Callable[[], float]) -> None:
        self.outbox_pending.set_function(depth)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
