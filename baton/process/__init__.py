"""Baton's process framework: steps with durable state, joined by routed events, run on Temporal.

```python
b = ProcessBuilder("DocumentGeneration")
gather = b.add_step(GatherProductInfo)
b.on_input_event("Start").send_event_to(gather)
gather.on_function_result().stop_process()
process = b.build()
```
"""

from .builder import Process, ProcessBuilder, RouteBuilder, StepHandle, load_process
from .errors import ProcessDefinitionError
from .model import ProcessDefinition, RetryOptions, StepOptions
from .runtime import EventAccepted, ProcessResult, ProcessState, StepFailure
from .step import NoState, ProcessStep, StepContext, step_function

__all__ = [
    "EventAccepted",
    "NoState",
    "Process",
    "ProcessBuilder",
    "ProcessDefinition",
    "ProcessDefinitionError",
    "ProcessResult",
    "ProcessState",
    "ProcessStep",
    "RetryOptions",
    "RouteBuilder",
    "StepContext",
    "StepFailure",
    "StepHandle",
    "StepOptions",
    "load_process",
    "step_function",
]
