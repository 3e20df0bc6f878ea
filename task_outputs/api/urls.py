from superai_flow.api import api_router
from task_outputs.api.views import TaskOutputViewSet

router = api_router()
router.register("task-outputs", TaskOutputViewSet, basename="task-output")

urlpatterns = router.urls
