from __future__ import annotations

from rest_framework.routers import SimpleRouter

from operations.api import SlaMissViewSet, SlaViewSet

router = SimpleRouter()
router.register("slas", SlaViewSet, basename="api-sla")
router.register("sla-misses", SlaMissViewSet, basename="api-sla-miss")

urlpatterns = router.urls
