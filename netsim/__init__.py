"""netsim: a deterministic UDP network simulator for Trio, and a real UDP impairment proxy."""

__version__ = "0.1.0"
__all__ = ["__version__"]
