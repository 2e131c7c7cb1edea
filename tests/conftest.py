"""Suite-wide settings: hypothesis runs derandomized so every run tests the same inputs."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "udpim",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("udpim")
