"""convlab's own Python client: `Client` over HTTP with the API's models, and the `convlab jobs|predict|lab`
commands built on it (commands.py)."""

from service.client.client import Client, ClientError, Event, PredictInput

__all__ = ["Client", "ClientError", "Event", "PredictInput"]
