"""The step activity: runs one step function with its inputs and state, returns what it produced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from baton.process.compiler import resolve_step_class
from baton.process.runtime import RUN_STEP_ACTIVITY, EmittedEventData, StepInvocation, StepOutcome
from baton.process.step import ProcessStep, StepContext
from baton.telemetry.logs import log_fields

from .heartbeat import heartbeating


class StepActivities:
    """Step execution for a worker, limited to the step modules it allows."""

    def __init__(self, allowed_modules: Sequence[str]) -> None:
        self._allowed = list(allowed_modules)
        self._adapters: dict[tuple[str, str], dict[str, TypeAdapter[Any]]] = {}

    @activity.defn(dynamic=True)
    async def run_step(self, args: Sequence[RawValue]) -> StepOutcome:
        """Run the step function the activity type names (`<step>/<function>`, see
        `step_activity_type`), or, for runs of earlier releases, `baton.run_step` with the step and
        the function in its input. The new state is kept only if the call succeeds."""
        activity_type = activity.info().activity_type
        step, slash, function = activity_type.partition("/")
        if not (slash or activity_type == RUN_STEP_ACTIVITY):
            # Retried, as the SDK retries any activity a worker does not have: the next may.
            raise ApplicationError(
                f"no activity {activity_type!r} on this worker: not a step function", type="NotFoundError"
            )
        if len(args) != 1:
            raise _invalid(f"step activity {activity_type!r} takes one input, not {len(args)}")
        try:
            invocation = activity.payload_converter().from_payload(args[0].payload, StepInvocation)
        except ValidationError as e:
            raise _invalid(f"input of step activity {activity_type!r} is invalid: {_describe(e)}") from e
        if slash:
            invocation = invocation.model_copy(update={"step": step, "function": function})
        return await self._run(invocation)

    async def _run(self, invocation: StepInvocation) -> StepOutcome:
        step_class = self._step_class(invocation)
        where = f"{invocation.step}.{invocation.function}"
        try:
            state = step_class.state_type.model_validate(invocation.state or {})
        except ValidationError as e:
            raise _invalid(
                f"stored state of step {invocation.step!r} does not fit {step_class.__name__}: {_describe(e)}"
            ) from e
        args = {}
        for name, adapter in self._parameter_adapters(step_class, invocation).items():
            try:
                args[name] = adapter.validate_python(invocation.args.get(name))
            except ValidationError as e:
                raise _invalid(f"input {name!r} of {where} is invalid: {_describe(e)}") from e
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


def _describe(error: ValidationError) -> str:
    """What is wrong, by field, without echoing the values: they may be personal data."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in error.errors(include_input=False)
    )


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="StepInputInvalid", non_retryable=True)
