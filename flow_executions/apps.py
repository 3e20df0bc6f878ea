from django.apps import AppConfig
from django.db.models.signals import post_save


class FlowExecutionsConfig(AppConfig):
    """Runs of workflows (flow executions) and the attempts of their tasks (task executions)."""

    name = "flow_executions"
    verbose_name = "Flow executions"

    def ready(self) -> None:
        from flow_executions.models import FlowExecution
        from flow_executions.signals import flow_execution_saved

        post_save.connect(flow_execution_saved, sender=FlowExecution, dispatch_uid="flow_execution_saved")
