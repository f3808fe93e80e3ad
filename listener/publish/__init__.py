"""Delivery of alerts to the MQTT bus: broker settings, topics, the relay and the one-shot drain."""

from listener.publish.broker import BrokerSettings, parse_broker_url
from listener.publish.mqtt import MqttPublisher, drain_outbox
from listener.publish.relay import AlertRelay, RelayStats
from listener.publish.topics import active_topic, alert_topic, group_slug

__all__ = ["AlertRelay", "BrokerSettings", "MqttPublisher", "RelayStats", "active_topic", "alert_topic",
           "drain_outbox", "group_slug", "parse_broker_url"]
