"""Trio drivers around the sans-IO core: the only udpim code that awaits."""
