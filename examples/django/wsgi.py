"""The Django example as a WSGI app (``gunicorn examples.django.wsgi:application`` with
``$HELOGALE_URI`` set)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django.settings")
application = get_wsgi_application()
