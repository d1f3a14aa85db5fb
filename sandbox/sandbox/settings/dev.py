"""Settings for `sandbox/run` (runserver at http://localhost:8000)."""

from .base import *  # noqa: F403

DEBUG = True
