"""convlab's own Python client: `Client` over HTTP with the API's models, and the `convlab jobs|predict|lab|datasets|
models` commands built on it (commands.py)."""

from service.client.client import Client, Event, PredictInput
from service.client.datasets import DatasetPush
from service.client.http import ClientError

__all__ = ["Client", "ClientError", "DatasetPush", "Event", "PredictInput"]
