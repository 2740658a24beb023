"""convlab: train, track and serve the classic modern CNNs, and compute optimization algorithms, over HTTP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("convlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
