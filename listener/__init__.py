"""social-listener: hears what the public says about an organisation and raises alerts on MQTT."""

__version__ = "0.1.0"
