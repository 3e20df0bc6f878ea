from flow_executions.api.views import FlowExecutionViewSet, TaskExecutionViewSet
from superai_flow.api import api_router

router = api_router()
router.register("flow-executions", FlowExecutionViewSet, basename="flow-execution")
router.register("task-executions", TaskExecutionViewSet, basename="task-execution")

urlpatterns = router.urls
