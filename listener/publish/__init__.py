"""Delivery of alerts to the MQTT bus: broker settings, topics, and the outbox drain."""

from listener.publish.broker import BrokerSettings, parse_broker_url
from listener.publish.mqtt import MqttPublisher, drain_outbox
from listener.publish.topics import alert_topic

__all__ = ["BrokerSettings", "MqttPublisher", "alert_topic", "drain_outbox", "parse_broker_url"]
