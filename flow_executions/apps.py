from django.apps import AppConfig


class FlowExecutionsConfig(AppConfig):
    """Runs of workflows (flow executions) and the attempts of their tasks (task executions)."""

    name = "flow_executions"
    verbose_name = "Flow executions"
