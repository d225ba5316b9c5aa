"""numerflow: take part in the Numerai tournament end to end."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("numerflow")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
