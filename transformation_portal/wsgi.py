from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from transformation_portal.bootstrap import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
bootstrap()
application = get_wsgi_application()
