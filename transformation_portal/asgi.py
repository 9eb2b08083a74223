from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from transformation_portal.bootstrap import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
bootstrap()
application = get_asgi_application()
