from flow_executions.api.views import FlowExecutionViewSet
from superai_flow.api import api_router

router = api_router()
router.register("flow-executions", FlowExecutionViewSet, basename="flow-execution")

urlpatterns = router.urls
