"""udpim: reliable, encrypted, always-on instant-messaging sessions over plain UDP."""

__version__ = "0.1.0"
__all__ = ["__version__"]
