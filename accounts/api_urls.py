from __future__ import annotations

from rest_framework.routers import SimpleRouter

from accounts.audit_views import AuditEventViewSet

router = SimpleRouter()
router.register("audit", AuditEventViewSet, basename="api-audit")
urlpatterns = router.urls
