"""The step activity: runs one step function with its inputs and state, returns what it produced."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from baton.process.compiler import resolve_step_class
from baton.process.model import NAME
from baton.process.runtime import RUN_STEP_ACTIVITY, EmittedEventData, StepInvocation, StepOutcome
from baton.process.schema import validation_problems
from baton.process.step import ProcessStep, StepContext
from baton.telemetry.logs import log_fields

from .heartbeat import heartbeating

# `step_activity_type`: a step's name and a function's.
_STEP_ACTIVITY_TYPE = re.compile(rf"(?P<step>{NAME})/(?P<function>[A-Za-z_][A-Za-z0-9_]*)")


class StepActivities:
    """Step execution for a worker, limited to the step modules it allows."""

    def __init__(self, allowed_modules: Sequence[str]) -> None:
        self._allowed = list(allowed_modules)
        self._adapters: dict[tuple[str, str], dict[str, TypeAdapter[Any]]] = {}

    @activity.defn(dynamic=True)
    async def run_step(self, args: Sequence[RawValue]) -> StepOutcome:
        """Run the step function the activity type names (`<step>/<function>`, see
        `step_activity_type`, for runs started with `BATON_STEP_ACTIVITY_TYPES`), or, as
        `baton.run_step`, the one its input names. The new state is kept only if the call succeeds."""
        activity_type = activity.info().activity_type
        named = _STEP_ACTIVITY_TYPE.fullmatch(activity_type)
        invocation, problem = None, ""
        if (named or activity_type == RUN_STEP_ACTIVITY) and len(args) == 1:
            try:
                invocation = activity.payload_converter().from_payload(args[0].payload, StepInvocation)
            except ValidationError as e:
                problem = f": {validation_problems(e)}"
            except (TypeError, ValueError, RuntimeError):  # not JSON, or no payload the converter reads
                pass
        if not isinstance(invocation, StepInvocation):
            # Another service's activity on a queue it shares with steps, say: retried, as the SDK
            # retries any activity a worker does not have, so that the worker for it may take it.
            # The error names what is wrong, never the data (it is logged, and may be personal).
            raise ApplicationError(
                f"no activity {activity_type!r} on this worker: not a step function with a step "
                f"invocation for input{problem}",
                type="NotFoundError",
            ) from None
        if named:
            invocation = invocation.model_copy(update={"step": named["step"], "function": named["function"]})
        return await self._run(invocation)

    async def _run(self, invocation: StepInvocation) -> StepOutcome:
        step_class = self._step_class(invocation)
        where = f"{invocation.step}.{invocation.function}"
        try:
            state = step_class.state_type.model_validate(invocation.state or {})
        except ValidationError as e:
            raise _invalid(
                f"stored state of step {invocation.step!r} does not fit {step_class.__name__}: {validation_problems(e)}"
            ) from None
        args = {}
        for name, adapter in self._parameter_adapters(step_class, invocation).items():
            try:
                args[name] = adapter.validate_python(invocation.args.get(name))
            except ValidationError as e:
                raise _invalid(f"input {name!r} of {where} is invalid: {validation_problems(e)}") from None
        instance = step_class(state)
        ctx = StepContext(invocation.process_name, invocation.step, attempt=activity.info().attempt)
        # Step code need not heartbeat: a dead worker is noticed within the heartbeat timeout, and
        # a cancelled process cancels its running steps.
        with log_fields(process=invocation.process_name, step=invocation.step):
            async with heartbeating():
                result = await getattr(instance, invocation.function)(ctx, **args)
        return StepOutcome(
            result=to_jsonable_python(result),
            events=[EmittedEventData(name=e.name, data=to_jsonable_python(e.data)) for e in ctx.emitted],
            state=instance.state.model_dump(mode="json"),
        )

    def _parameter_adapters(
        self, step_class: type[ProcessStep[Any]], invocation: StepInvocation
    ) -> dict[str, TypeAdapter[Any]]:
        """Validators for the function's inputs, built once per step function: they are not cheap."""
        key = (invocation.ref, invocation.function)
        if key not in self._adapters:
            hints = step_class.parameter_types(invocation.function)
            self._adapters[key] = {name: TypeAdapter(hint) for name, hint in hints.items()}
        return self._adapters[key]

    def _step_class(self, invocation: StepInvocation) -> type[ProcessStep[Any]]:
        # Checked again here, not only at build time: workers must not import code on the word
        # of whoever can start a workflow.
        try:
            step_class = resolve_step_class(invocation.ref, self._allowed)
        except ValueError as e:
            raise ApplicationError(str(e), type="StepNotAllowed", non_retryable=True) from e
        if invocation.function not in step_class.step_functions():
            raise _invalid(f"{invocation.ref} has no step function {invocation.function!r}")
        return step_class


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="StepInputInvalid", non_retryable=True)
