"""Docker support: the engine connection, the service image and its cleanup.

``engine`` connects to a local engine, ``wheels`` downloads the service's
dependencies, ``base_image`` provides a Python 3.11 base image even without a
registry, ``images`` builds the service image, and ``cleanup`` removes the
containers that runs left behind.
"""

from harness.docker.cleanup import RUN_LABEL, clean
from harness.docker.engine import connect, engine_responds
from harness.docker.images import build_target_image, prune_images
from harness.docker.wheels import Pins

__all__ = [
    "RUN_LABEL",
    "Pins",
    "build_target_image",
    "clean",
    "connect",
    "engine_responds",
    "prune_images",
]
