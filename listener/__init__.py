"""social-listener: hears what the public says about an organisation and raises alerts on MQTT."""

from listener import native

__version__ = "0.1.0"

native.choose()  # compiled rule engine, or its pure-Python source (before any of its modules is imported)
