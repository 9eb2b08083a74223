from __future__ import annotations

from rest_framework.routers import SimpleRouter

from entities.api import EntityTypeViewSet, ModeChangeRequestViewSet

router = SimpleRouter()
router.register("entities", EntityTypeViewSet, basename="api-entity")
router.register("mode-requests", ModeChangeRequestViewSet, basename="api-mode-request")
urlpatterns = router.urls
