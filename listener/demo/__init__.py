"""`listener demo`: the bundled scenario through the whole path, shown as the comms team gets it."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence, TextIO

from listener.alert import Alert
from listener.backtest import run_backtest
from listener.errors import PublishError
from listener.paths import DEMO_SCENARIO
from listener.publish import MqttPublisher, drain_outbox, parse_broker_url
from listener.render import alert_text
from listener.rules import load_rules

INTRO = """\
social-listener demo: four hours around the Metro Police's accounts, replayed in event time.
  - ordinary chatter mentioning the service, three officers and #MetroCares
  - 14:40 a food-drive post draws a wave of thanks (should NOT alert)
  - 15:30 Const. Daniels' lip-sync video draws a wave of criticism (should alert)
  - 16:20 someone in crisis writes to Sgt. Rivera (should alert at once)
  - 17:05 someone offers information about a break-in (a tip, routed apart)
"""


def run_demo(*, rules_dir: Sequence[str], broker: str, prefix: str, publish: bool, out: TextIO,
             scenario: Path = DEMO_SCENARIO) -> int:
    ruleset = load_rules(rules_dir)
    print(INTRO, file=out)
    alerts: list[Alert] = []

    def show(alert: Alert) -> None:
        alerts.append(alert)
        print(alert_text(alert.to_payload()) + "\n", file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="listener-demo-") as tmp:
        result, store = run_backtest(scenario, ruleset.rules, Path(tmp) / "demo.db", on_alert=show)
        try:
            by_severity = Counter(a.severity for a in alerts if a.status == "firing")
            kinds = ", ".join(f"{n} {sev}" for sev, n in sorted(by_severity.items()))
            print(f"The comms team received {len(alerts)} alert messages ({kinds or 'none'}) "
                  f"out of {result.new} mentions.", file=out)
            if publish:
                settings = parse_broker_url(broker, prefix=prefix, client_id="listener-demo")
                try:
                    sent = asyncio.run(_publish(store, settings))
                    print(f"Published {sent} messages to {settings.url}; watch them with:\n"
                          f"  mosquitto_sub -h {settings.host} -p {settings.port} -t '{prefix}/#' -v", file=out)
                except PublishError:
                    print(f"No MQTT broker answered at {settings.url}; the alerts are shown above only.", file=out)
        finally:
            store.close()
    return 0


async def _publish(store, settings) -> int:  # type: ignore[no-untyped-def]
    async with MqttPublisher(settings, timeout_s=5.0) as publisher:
        return await drain_outbox(store, publisher)
