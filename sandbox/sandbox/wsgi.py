"""WSGI entry point of the sandbox."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox.settings.dev")
application = get_wsgi_application()
