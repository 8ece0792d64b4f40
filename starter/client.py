"""`BatonClient`: what other services import to start and steer process runs."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import uuid
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar

from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from baton.agents import AgentRegistry, AgentRunResult, AgentSpec
from baton.agents.runtime import AGENT_WORKFLOW, AgentRunInput
from baton.compliance import (
    HOLD_REASON_LENGTH,
    NOTE_LENGTH,
    RETENTION_SUMMARY,
    HoldRequest,
    Processing,
    ProcessingRecord,
    ProcessingRecords,
    ReleaseRequest,
    RequestKind,
    RequestResult,
    RetentionInput,
    RetentionState,
    ShiftRequest,
    SubjectRequest,
    request_workflow_id,
    retention_workflow_id,
    witness_workflow_id,
)
from baton.compliance.audit import AuditAnchor, AuditEntry, AuditLog, local_actor
from baton.errors import BatonError, Conflict, InvalidRequest, NotFound
from baton.orchestration.models import (
    ConcurrentInput,
    GroupChatInput,
    HandoffInput,
    HumanInput,
    HumanReply,
    MagenticInput,
    ManagerSpec,
    OrchestrationInput,
    OrchestrationProgress,
    OrchestrationResult,
    SequentialInput,
)
from baton.persistence.db import engine_from_settings
from baton.persistence.definitions import DefinitionStore
from baton.persistence.schema import Schema
from baton.persistence.subjects import SubjectKeys
from baton.process import EventAccepted, Process, ProcessResult, ProcessState
from baton.process.runtime import (
    BATON_TENANT,
    EventRejection,
    ProcessInput,
    SendEvent,
    check_event,
    process_search_attributes,
)
from baton.security.codec import subject_run_id
from baton.security.grants import GRANT_MEMO, RunGrant
from baton.security.keys import LiveKeyring
from baton.settings import BatonSettings, get_settings
from baton.temporal import ConfigurationError, connect, converter_keys, encryption_codec
from baton.workflows.compliance import (
    AuditWitnessWorkflow,
    DataSubjectRequestWorkflow,
    SubjectRetentionWorkflow,
)
from baton.workflows.process import PROCESS_WORKFLOW, ProcessWorkflow

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


IfExists = Literal["fail", "return"]
"""What a start under a run key already used does: fail (`RunAlreadyExists`, while that run
runs), or return that run, running or finished (an idempotent start)."""


def process_workflow_id(process_name: str, key: str | None = None, tenant: str | None = None) -> str:
    """`process-<name>-<key or uuid>`. Keys must not carry personal data: IDs bypass encryption."""
    return run_workflow_id(f"process-{process_name}", key, tenant)


def run_workflow_id(prefix: str, key: str | None = None, tenant: str | None = None) -> str:
    """`<prefix>-<key or uuid>`, the key checked: no personal data, as IDs bypass encryption.
    A tenant's keys are its own (`<prefix>-<tenant>.<key>`): two tenants' keys never meet."""
    if key is None:
        return f"{prefix}-{uuid.uuid4()}"
    if not _KEY.match(key):
        raise InvalidRequest(
            f"run key {key!r} is invalid: use 1-100 letters, digits, '.', '_' or '-' "
            "(and no personal data: workflow IDs are not encrypted)"
        )
    return f"{prefix}-{tenant}.{key}" if tenant else f"{prefix}-{key}"


class ProcessingRequired(InvalidRequest):
    """A run with a data subject was started without a purpose of processing."""


class RunAlreadyExists(Conflict, ValueError):
    """A run with the same key is running already."""


class EventRejected(BatonError):
    """A process refused an event before anything reached its history; `event` names it. An
    `InvalidRequest` (400) when the event or its data is wrong, a `Conflict` (409) once the
    process has finished."""

    status = 400

    def __init__(self, rejection: EventRejection) -> None:
        super().__init__(rejection.message)
        self.event = rejection.event
        self.process = rejection.process
        self.accepted = rejection.accepted
        self.problems = rejection.problems

    @staticmethod
    def of(rejection: EventRejection) -> EventRejected:
        """The error that says why: `UnknownEvent`, `InvalidEventData` or `ProcessFinished`."""
        kinds: dict[str, type[EventRejected]] = {
            "UnknownEvent": UnknownEvent,
            "InvalidEventData": InvalidEventData,
        }
        return kinds.get(rejection.reason, ProcessFinished)(rejection)

    def extensions(self) -> dict[str, Any]:
        return {"problems": self.problems} if self.problems else {}


class UnknownEvent(EventRejected, InvalidRequest):
    """The process declares no input event by that name; `accepted` lists those it does."""

    def extensions(self) -> dict[str, Any]:
        return {"accepted": self.accepted}


class InvalidEventData(EventRejected, InvalidRequest):
    """The event's data does not fit a parameter it fills; `problems` name each target and field."""


class ProcessFinished(EventRejected, Conflict):
    """The process has stopped (completed, failed or cancelled) and takes no more events."""

    status = 409


_REJECTIONS = {"UnknownEvent", "InvalidEventData", "ProcessFinished"}
"""Error types of a refused `send_event` update, whose details hold an `EventRejection`."""

ResultT = TypeVar("ResultT")


class _Run(Generic[ResultT]):
    """What every run handle offers: its ID and UI link, waiting for it, cancelling it."""

    def __init__(self, handle: WorkflowHandle[Any, ResultT], client: BatonClient) -> None:
        self.handle = handle
        self._client = client

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def ui_url(self) -> str:
        """Where this run is in the Temporal UI."""
        return self._client.settings.workflow_url(self.id, self._client.temporal.namespace)

    async def result(self) -> ResultT:
        """Wait for the run to finish; raises `WorkflowFailureError` saying why when it failed."""
        return await self.handle.result()

    async def cancel(self) -> None:
        """Ask the run to stop (audited); its running steps and calls are cancelled."""
        async with self._client.audited("run.cancel", self.id):
            await self.handle.cancel()


class ProcessRun(_Run[ProcessResult]):
    """A handle on one process run: wait for it, look at it, send it events."""

    async def state(self) -> ProcessState:
        """Status, step states and run counts, pending messages, what runs now."""
        return await self.handle.query(ProcessWorkflow.state)

    async def send_event(
        self, name: str, data: Any = None, *, request_id: str | None = None
    ) -> EventAccepted:
        """Deliver an external event. Raises `UnknownEvent` for an event the process does not
        declare, `InvalidEventData` for data that does not fit the parameters it fills (naming
        the field), `ProcessFinished` once the process has stopped: then nothing was delivered.

        `request_id` makes the call safe to repeat: Temporal delivers an event once per ID, so a
        caller who did not learn the outcome (a timeout, the app database down while the answer
        was read) sends it again with the same ID and gets the first delivery's answer."""
        async with self._client.audited("run.event", self.id, {"event": name}):
            return await self._send_event(name, data, request_id)

    async def _send_event(self, name: str, data: Any, request_id: str | None) -> EventAccepted:
        try:
            return await self.handle.execute_update(
                ProcessWorkflow.send_event, SendEvent(name=name, data=data), id=request_id
            )
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError) and cause.type in _REJECTIONS and cause.details:
                raise EventRejected.of(EventRejection.model_validate(cause.details[0])) from None
            raise
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND or "already completed" not in e.message:
                raise
            # A closed run takes no updates: the server refuses them before any validator runs.
            state = await self.state()
            raise EventRejected.of(
                EventRejection(
                    reason="ProcessFinished", process=state.name, event=name, accepted=state.accepted_events
                )
            ) from None


class OrchestrationRun(_Run[OrchestrationResult]):
    """A handle on one orchestration run: wait, watch the transcript grow, answer, cancel."""

    async def progress(self) -> OrchestrationProgress:
        """Status, round, the transcript so far, and the question a person is asked, if any."""
        return await self.handle.query("progress", result_type=OrchestrationProgress)

    async def reply(self, text: str, author: str = "user") -> None:
        """Answer the question the run waits on; refused when it is not waiting."""
        async with self._client.audited("run.reply", self.id):
            await self.handle.execute_update("reply", HumanReply(text=text, author=author))


class SubjectRetention:
    """One data subject's retention, as their `SubjectRetention` workflow keeps it: every change
    is an update of that workflow (audited, with this client's actor)."""

    def __init__(self, client: BatonClient, ref: str) -> None:
        self.ref = ref
        self.workflow_id = retention_workflow_id(ref)
        self._client = client

    async def state(self) -> RetentionState:
        """Records, the next due date and any legal hold, from the app database."""
        return await self._client.records.state(self.ref)

    async def hold(self, reason: str) -> RetentionState:
        """Place a legal hold: nothing of the subject is deleted for retention until `release`.
        The reason stays in the app database (it may name people), not in the workflow's history."""
        if not 0 < len(reason.strip()) <= HOLD_REASON_LENGTH:
            raise InvalidRequest(f"a legal hold needs a reason of 1 to {HOLD_REASON_LENGTH} characters")
        note = await self._client.records.file_note(self.ref, reason.strip())
        return await self._update(
            SubjectRetentionWorkflow.hold, HoldRequest(reason_note=note, actor=self._client.actor)
        )

    async def release(self) -> RetentionState:
        return await self._update(SubjectRetentionWorkflow.release, ReleaseRequest(actor=self._client.actor))

    async def extend(self, days: int) -> RetentionState:
        """Keep every record of the subject `days` longer."""
        return await self._update(
            SubjectRetentionWorkflow.extend, ShiftRequest(days=days, actor=self._client.actor)
        )

    async def shorten(self, days: int) -> RetentionState:
        """Keep every record `days` less; what falls due is deleted at once."""
        return await self._update(
            SubjectRetentionWorkflow.shorten, ShiftRequest(days=days, actor=self._client.actor)
        )

    async def _update(self, update: Any, request: Any) -> RetentionState:
        handle = self._client.temporal.get_workflow_handle(self.workflow_id)
        try:
            result: RetentionState = await handle.execute_update(update, request)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            if not (await self.state()).records:
                raise NotFound(
                    "this data subject has no processing records: no run was started for them with "
                    "a purpose of processing, or everything of theirs was deleted"
                ) from None
            # Records without their workflow (terminated, say): start it again, then change it.
            await self._client._retention_changed(self.ref)
            result = await handle.execute_update(update, request)
        return result


class PendingOrchestration:
    """What `run_sequential` and the other `run_*` return: `await` it to start the run and wait for
    its `OrchestrationResult`, or `await pending.start()` for an `OrchestrationRun` to follow."""

    def __init__(self, client: BatonClient, input: OrchestrationInput) -> None:
        self.client = client
        self.input = input

    async def start(
        self,
        *,
        key: str | None = None,
        if_exists: IfExists = "fail",
        data_subject: str | None = None,
        processing: Processing | None = None,
    ) -> OrchestrationRun:
        """Start the run and return its handle; `key`, `if_exists`, `data_subject` and
        `processing` as for `BatonClient.start_process`."""
        return await self.client.orchestrate(
            self.input, key=key, if_exists=if_exists, data_subject=data_subject, processing=processing
        )

    def __await__(self) -> Generator[Any, None, OrchestrationResult]:
        return self._start_and_wait().__await__()

    async def _start_and_wait(self) -> OrchestrationResult:
        return await (await self.start()).result()


ORCHESTRATION_WORKFLOWS = {
    SequentialInput: ("sequential", "SequentialOrchestration"),
    ConcurrentInput: ("concurrent", "ConcurrentOrchestration"),
    GroupChatInput: ("group-chat", "GroupChatOrchestration"),
    HandoffInput: ("handoff", "HandoffOrchestration"),
    MagenticInput: ("magentic", "MagenticOrchestration"),
}
"""Pattern (the workflow ID's prefix) and workflow type, by input model."""

AgentRef = AgentSpec | str
"""An agent given as a spec, or by name in the agent registry."""


async def grant_of(run: WorkflowExecutionDescription) -> RunGrant | None:
    """The grant a run carries (who started it, and the agents it uses), if it has one."""
    try:
        return await run.memo_value(GRANT_MEMO, None, type_hint=RunGrant)
    except ValueError:  # a memo that is not a grant: as if there were none
        return None


def agents_used(input: Any) -> list[AgentSpec]:
    """The agents a run with this workflow input may use."""
    if isinstance(input, ProcessInput):
        return input.process.agents()
    if isinstance(input, OrchestrationInput):
        return input.all_agents()
    if isinstance(input, AgentRunInput):
        return [input.agent]
    return []


class BatonClient:
    """Starts processes and finds runs, against a running Temporal.

    ```python
    baton = await BatonClient.connect()
    run = await baton.start_process(process, "Start", {"product": "Baton"})
    print((await run.result()).output)
    ```
    """

    def __init__(
        self,
        client: Client,
        settings: BatonSettings | None = None,
        *,
        actor: str | None = None,
        roles: Iterable[str] = (),
        tenant: str | None = None,
        search_attributes: bool = True,
    ) -> None:
        self.temporal = client
        self.settings = settings or get_settings()
        self.actor = actor or local_actor()
        """Who this client acts for, in the audit trail: a service or person's name (the API
        passes its caller's); by default the OS user at this host."""
        self.roles = sorted(roles or self.settings.client_roles)
        """The actor's roles (by default `client_roles`): runs it starts may use the agents these
        admit (checked by workers)."""
        self.tenant = tenant
        """The tenant whose runs this client starts and sees (the API's caller's); None for all."""
        self._search_attributes = search_attributes
        self._engine: AsyncEngine | None = None
        self._agents: AgentRegistry | None = None
        self._audit_log: AuditLog | None = None
        self._records: ProcessingRecords | None = None
        self._app_schema: Schema | None = None

    @classmethod
    async def connect(
        cls,
        settings: BatonSettings | None = None,
        *,
        actor: str | None = None,
        roles: Iterable[str] = (),
        tenant: str | None = None,
    ) -> BatonClient:
        settings = settings or get_settings()
        return cls(await connect(settings), settings, actor=actor, roles=roles, tenant=tenant)

    def acting_for(self, actor: str, roles: Iterable[str] = (), tenant: str | None = None) -> BatonClient:
        """This client acting for `actor`, with `roles`, in `tenant` (the HTTP API's caller), on
        the same connections, agents, records and audit trail. Close only the original."""
        _ = self.records  # made here, so that every copy shares them
        _ = self.audit_trail
        _ = self.agents
        acting = copy.copy(self)
        acting.actor, acting.roles, acting.tenant = actor, sorted(roles), tenant
        return acting

    @property
    def keys(self) -> LiveKeyring | None:
        """Baton's keyring, when this client's data converter encrypts (it signs runs' grants)."""
        return converter_keys(self.temporal.data_converter)

    async def audit_anchors(self) -> list[AuditAnchor]:
        """The audit chain's anchors, as the audit witness keeps them in its Temporal history."""
        witness = self.temporal.get_workflow_handle(witness_workflow_id(self.settings.compliance_queue))
        return await witness.query(AuditWitnessWorkflow.anchors)

    async def ready(self) -> dict[str, str | None]:
        """Whether what this client needs answers: for Temporal and the app database, None when
        it does, else the problem."""
        problems: dict[str, str | None] = {"temporal": None, "database": None}
        try:
            await self.temporal.service_client.check_health(timeout=timedelta(seconds=5))
        except Exception as e:  # whatever it is, it is the answer
            problems["temporal"] = f"{type(e).__name__}: {e}"
        try:
            async with self._database().connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as e:
            problems["database"] = f"{type(e).__name__}: {e}"
        return problems

    async def start_process(
        self,
        process: Process | str,
        event: str,
        data: Any = None,
        *,
        key: str | None = None,
        if_exists: IfExists = "fail",
        eager: bool = False,
        data_subject: str | None = None,
        processing: Processing | None = None,
    ) -> ProcessRun:
        """Start `process` with input event `event` carrying `data`.

        `process` is a built `Process`, or the name of a deployed one (its latest version).
        `key` makes the workflow ID `process-<name>-<key>`: a second start with the same key is
        refused while the first runs, or, with `if_exists="return"`, returns the run that key
        started (running or finished): a start a caller may repeat safely. `eager` asks the
        server to hand the first workflow task straight to a worker in this process, when there
        is one.

        `data_subject` names whose personal data the run holds: its payloads are sealed with that
        subject's own key (erasable), and it needs a `processing` (purpose, legal basis, retention;
        default: the process definition's), which is recorded and drives the data's deletion.
        """
        if isinstance(process, str):
            process = await self.definitions.load_process(process, self.settings, agents=self.agents)
        # The same check as the workflow's for later events, on the data as it will travel (JSON).
        if rejection := check_event(process.compiled, event, to_jsonable_python(data)):
            raise EventRejected.of(rejection)
        workflow_id = process_workflow_id(process.name, key, self.tenant)
        try:
            handle = await self._start(
                workflow_id,
                if_exists,
                data_subject,
                processing or process.processing,
                PROCESS_WORKFLOW,
                ProcessInput(
                    process=process.compiled,
                    event=event,
                    data=data,
                    steps_queue=self.settings.resolved_steps_queue,
                    llm_queue=self.settings.llm_queue,
                    step_activity_types=self.settings.step_activity_types,
                ),
                task_queue=self.settings.workflows_queue,
                result_type=ProcessResult,
                search_attributes=process_search_attributes(process.name)
                if self._search_attributes
                else None,
                static_summary=f"process {process.name}"
                + (f" v{process.version}" if process.version else ""),
                request_eager_start=eager,
            )
        except WorkflowAlreadyStartedError as e:
            raise RunAlreadyExists(
                f"a run {e.workflow_id} is already running; use another key, or get_run() to follow it"
            ) from e
        return ProcessRun(handle, self)

    async def start_agent(
        self,
        agent: AgentSpec | str,
        input: str,
        *,
        key: str | None = None,
        if_exists: IfExists = "fail",
        data_subject: str | None = None,
        processing: Processing | None = None,
    ) -> WorkflowHandle[Any, AgentRunResult]:
        """Start one agent on `input`; `agent` is a spec, or the name of a registered agent.
        `key` (the workflow ID is `agent-<name>-<key>`), `if_exists`, `data_subject` and
        `processing` (default: the agent's): as for `start_process`."""
        spec = self.agents[agent] if isinstance(agent, str) else agent
        return await self._start(
            run_workflow_id(f"agent-{spec.name}", key, self.tenant),
            if_exists,
            data_subject,
            processing or spec.processing,
            AGENT_WORKFLOW,
            AgentRunInput(agent=spec, input=input, llm_queue=self.settings.llm_queue),
            task_queue=self.settings.workflows_queue,
            result_type=AgentRunResult,
            static_summary=f"agent {spec.name} ({spec.model})",
        )

    async def run_agent(self, agent: AgentSpec | str, input: str) -> AgentRunResult:
        """Run one agent on `input` and wait for its answer."""
        return await (await self.start_agent(agent, input)).result()

    async def orchestrate(
        self,
        input: OrchestrationInput,
        *,
        key: str | None = None,
        if_exists: IfExists = "fail",
        data_subject: str | None = None,
        processing: Processing | None = None,
    ) -> OrchestrationRun:
        """Start an orchestration from its input model; `run_sequential` and friends build it.
        `key` (the workflow ID is `<pattern>-<key>`), `if_exists`, `data_subject` and
        `processing`: as for `start_process`."""
        pattern, workflow_type = ORCHESTRATION_WORKFLOWS[type(input)]
        handle = await self._start(
            run_workflow_id(pattern, key, self.tenant),
            if_exists,
            data_subject,
            processing,
            workflow_type,
            input.model_copy(update={"llm_queue": self.settings.llm_queue}),
            task_queue=self.settings.workflows_queue,
            result_type=OrchestrationResult,
            static_summary=f"{pattern}: {', '.join(a.name for a in input.agents)}",
        )
        return OrchestrationRun(handle, self)

    def run_sequential(
        self, task: str, agents: Sequence[AgentRef], *, pass_transcript: bool = False
    ) -> PendingOrchestration:
        """Agents in order, each answering the previous one (or, with `pass_transcript`, all so far).

        Await it for the `OrchestrationResult`, or `await ….start()` for an `OrchestrationRun`."""
        return PendingOrchestration(
            self, SequentialInput(task=task, agents=self._specs(agents), pass_transcript=pass_transcript)
        )

    def run_concurrent(
        self,
        task: str,
        agents: Sequence[AgentRef],
        *,
        aggregator: AgentRef | None = None,
        on_failure: Literal["fail", "continue"] = "fail",
    ) -> PendingOrchestration:
        """All agents on the task at once; their answers listed, or combined by `aggregator`."""
        return PendingOrchestration(
            self,
            ConcurrentInput(
                task=task,
                agents=self._specs(agents),
                aggregator=self._specs([aggregator])[0] if aggregator else None,
                on_failure=on_failure,
            ),
        )

    def run_group_chat(
        self,
        task: str,
        agents: Sequence[AgentRef],
        *,
        manager: ManagerSpec | Literal["round-robin", "llm"] = "round-robin",
        max_rounds: int = 10,
        approval_phrase: str | None = "APPROVED",
        human: HumanInput | None = None,
    ) -> PendingOrchestration:
        """A managed chat: round-robin, an LLM manager (the ProjectManager agent), or a ManagerSpec."""
        if manager == "llm":
            manager = ManagerSpec(kind="llm", agent=self.agents["ProjectManager"])
        elif manager == "round-robin":
            manager = ManagerSpec()
        chat = GroupChatInput(
            task=task,
            agents=self._specs(agents),
            manager=manager,
            max_rounds=max_rounds,
            approval_phrase=approval_phrase,
            human=human or HumanInput(),
        )
        return PendingOrchestration(self, chat)

    def run_handoff(
        self,
        task: str,
        agents: Sequence[AgentRef],
        *,
        routes: dict[str, list[str]] | None = None,
        max_handoffs: int = 10,
        human: HumanInput | None = None,
    ) -> PendingOrchestration:
        """Agents pass control along `routes` (default: anyone to anyone) until one completes the task."""
        specs = self._specs(agents)
        names = [a.name for a in specs]
        routes = routes if routes is not None else {n: [m for m in names if m != n] for n in names}
        return PendingOrchestration(
            self,
            HandoffInput(
                task=task, agents=specs, routes=routes, max_handoffs=max_handoffs, human=human or HumanInput()
            ),
        )

    def run_magentic(
        self,
        task: str,
        agents: Sequence[AgentRef],
        *,
        manager: AgentRef = "ProjectManager",
        max_rounds: int = 20,
    ) -> PendingOrchestration:
        """A planning manager keeps task and progress ledgers and picks who works next."""
        return PendingOrchestration(
            self,
            MagenticInput(
                task=task,
                agents=self._specs(agents),
                manager=self._specs([manager])[0],
                max_rounds=max_rounds,
            ),
        )

    def _specs(self, agents: Sequence[AgentRef]) -> list[AgentSpec]:
        return [self.agents[a] if isinstance(a, str) else a for a in agents]

    @property
    def agents(self) -> AgentRegistry:
        """The agents in the configured agent folders (read on first use)."""
        if self._agents is None:
            self._agents = AgentRegistry.from_dirs(self.settings.agent_dirs)
        return self._agents

    @property
    def definitions(self) -> DefinitionStore:
        """The deployed process definitions, in the app database (connected on first use)."""
        return DefinitionStore(self._schema())

    @property
    def subjects(self) -> SubjectKeys:
        """Data subjects' keys: which runs hold whose data, and erasure. The registry of this
        client's data converter: one per process, shared with the codec and the workers."""
        subjects = encryption_codec(self.temporal.data_converter).subjects
        if subjects is None:
            raise ConfigurationError("this client's data converter has no data-subject keys")
        return subjects

    async def _start(
        self,
        workflow_id: str,
        if_exists: IfExists,
        data_subject: str | None,
        processing: Processing | None,
        workflow_type: str,
        arg: Any,
        **options: Any,
    ) -> Any:
        """Start a workflow; with a data subject, under the subject-run ID (`<id>~ds`), bound to
        the subject's key before anything is sealed, and recorded with its purpose of processing
        before it runs (the subject's retention workflow hears of it once it has started).

        The start is audited before it is made (see `audited`). Once the run is started, nothing
        fails the call: a retention workflow that cannot be told is logged, and the daily
        retention sweep deletes the run's data when due.

        A binding outlives a start that failed: the run may have started all the same (a
        timeout), or under another client (the same key and subject at once), and a binding only
        ever admits its own subject.

        With `if_exists="return"`, the run found under the ID must be of the same kind (workflow
        type, process, tenant): a key that another kind of run took is a `Conflict`, never that
        run's answer."""
        record = None
        # Who the run acts for, made (and so checked) before anything is recorded.
        final_id = subject_run_id(workflow_id) if data_subject is not None else workflow_id
        options |= self._acting_options(final_id, options.get("search_attributes"), agents_used(arg))
        if data_subject is not None:
            if processing is None:
                raise ProcessingRequired(
                    "a run with a data subject needs its purpose of processing: pass "
                    "processing=Processing(purpose=..., legal_basis=...) or declare it in the process "
                    "or agent definition"
                )
            workflow_id = (await self.subjects.register(final_id, data_subject)).workflow_id
            record = await self.records.record(data_subject, processing, workflow_id, self.actor)
        if if_exists == "return":  # the run the key started, whether it runs or has finished
            options |= {
                "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
                "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            }
        # What is started, never whose data: the subject is in the run's ID only as `~ds`.
        async with self.audited("run.start", workflow_id, {"summary": options.get("static_summary", "")}):
            try:
                handle = await self.temporal.start_workflow(workflow_type, arg, id=workflow_id, **options)
            except WorkflowAlreadyStartedError:
                if if_exists != "return":
                    raise
                # It has finished.
                handle = self.temporal.get_workflow_handle(
                    workflow_id, result_type=options.get("result_type")
                )
            if if_exists == "return":  # perhaps a run this start did not make
                await self._same_kind(handle, workflow_type, options.get("search_attributes"))
        if record is not None:
            try:
                await self._retention_changed(record.subject_ref)
            except RPCError as e:
                log.warning(
                    "run %s started, but its data subject's retention workflow could not be told (%s); "
                    "the daily retention sweep deletes its data when due",
                    workflow_id,
                    e,
                )
        return handle

    async def _same_kind(
        self, handle: WorkflowHandle[Any, Any], workflow_type: str, attributes: TypedSearchAttributes | None
    ) -> None:
        """`Conflict` unless the run under a key is of the kind a start asked for: its workflow
        type, and its process and tenant (IDs of different kinds can meet: `process-a-b-c` is
        process `a-b` with key `c`, and process `a` with key `b-c`)."""
        described = await handle.describe()
        found = described.typed_search_attributes
        if described.workflow_type != workflow_type or any(
            found.get(pair.key) != pair.value for pair in attributes or ()
        ):
            raise Conflict(f"run key taken: {handle.id} is another kind of run, or another tenant's")

    def _acting_options(
        self, workflow_id: str, attributes: TypedSearchAttributes | None, agents: list[AgentSpec]
    ) -> dict[str, Any]:
        """Who the run acts for: a grant its workers check before it uses an agent (signed when
        this client holds Baton's keys), and its tenant among its search attributes."""
        options: dict[str, Any] = {}
        if self.keys is not None:
            used = {agent.name: agent.roles for agent in agents}
            try:
                grant = RunGrant.sign(self.keys, workflow_id, self.actor, self.roles, self.tenant, used)
            except ValidationError as e:
                raise InvalidRequest(f"the run cannot say whom it acts for: {e.errors()[0]['msg']}") from None
            options["memo"] = {GRANT_MEMO: grant}
        if self.tenant is not None and self._search_attributes:
            pairs = list(attributes or TypedSearchAttributes.empty)
            options["search_attributes"] = TypedSearchAttributes(
                [*pairs, SearchAttributePair(BATON_TENANT, self.tenant)]
            )
        return options

    async def record_processing(
        self, data_subject: str, processing: Processing, run: str | None = None
    ) -> ProcessingRecord:
        """Record processing of `data_subject`'s data that happens outside a Baton run (or for
        `run`); its retention starts, or is pushed back, as for a run's."""
        record = await self.records.record(data_subject, processing, run, self.actor)
        await self._retention_changed(record.subject_ref)
        return record

    async def _retention_changed(self, ref: str) -> None:
        """Tell the subject's retention workflow, starting it if it is not running."""
        await self.temporal.start_workflow(
            SubjectRetentionWorkflow.run,
            RetentionInput(ref=ref, search_attributes=self._search_attributes),
            id=retention_workflow_id(ref),
            task_queue=self.settings.compliance_queue,
            start_signal="records_changed",
            static_summary=RETENTION_SUMMARY,
        )

    async def subject_request(
        self, kind: RequestKind, data_subject: str, *, corrected: str | None = None, note: str = ""
    ) -> WorkflowHandle[DataSubjectRequestWorkflow, RequestResult]:
        """File a data subject's access, erasure or rectification request (`corrected`: their
        right identifier; `note`: what was wrong): a `DataSubjectRequest` workflow on the
        compliance queue, answered within a month (audited, with this client's actor)."""
        if (kind is RequestKind.RECTIFICATION) != (corrected is not None):
            raise InvalidRequest("a rectification, and only a rectification, names the corrected identifier")
        if len(note) > NOTE_LENGTH:
            raise InvalidRequest(
                f"a rectification note has at most {NOTE_LENGTH} characters, not {len(note)}"
            )
        ref = self.subjects.ref(data_subject)
        request = SubjectRequest(
            kind=kind,
            subject_ref=ref,
            also_refs=self.subjects.legacy_refs(data_subject) if kind is RequestKind.ERASURE else [],
            actor=self.actor,
            request_id=uuid.uuid4().hex,
            corrected_ref=self.subjects.ref(corrected) if corrected is not None else None,
            note_id=await self.records.file_note(ref, note) if note else None,
        )
        return await self.temporal.start_workflow(
            DataSubjectRequestWorkflow.run,
            request,
            id=request_workflow_id(kind, request.request_id),
            task_queue=self.settings.compliance_queue,
            static_summary=f"data-subject {kind.value} request",
        )

    @property
    def records(self) -> ProcessingRecords:
        """Processing records and legal holds (in the app database, connected on first use)."""
        if self._records is None:
            self._records = ProcessingRecords(self._schema(), self.subjects)
        return self._records

    def retention(self, data_subject: str) -> SubjectRetention:
        """The data subject's retention: its state, legal hold and release, longer or shorter."""
        return SubjectRetention(self, self.subjects.ref(data_subject))

    @contextlib.asynccontextmanager
    async def audited(
        self, action: str, workflow_id: str, detail: dict[str, Any] | None = None
    ) -> AsyncIterator[None]:
        """Audit `action` on a run, then make it (the block): an action the audit trail cannot
        record is not made. An action that then fails is recorded too, as `<action>_failed`
        naming the error; it may have been made all the same when the error came after it was
        sent (a timeout), which is why `send_event` takes a `request_id`."""
        await self.audit(action, workflow_id, detail)
        try:
            yield
        except Exception as e:
            try:
                await self.audit(
                    f"{action}_failed", workflow_id, {**(detail or {}), "error": type(e).__name__}
                )
            except Exception:  # the action's own error is the one to raise
                log.exception("the failed %s of run %s could not be audited", action, workflow_id)
            raise

    async def audit(
        self,
        action: str,
        workflow_id: str | None,
        detail: dict[str, Any] | None = None,
        *,
        resource: str | None = None,
    ) -> None:
        """Record in the audit trail that this client's actor did `action` to a run (or to
        `resource`, something else: `template:<name>`)."""
        await self.audit_trail.append(
            AuditEntry(
                actor=self.actor,
                action=action,
                resource=resource or workflow_id,
                namespace=self.temporal.namespace,
                workflow_id=workflow_id,
                detail=detail or {},
            )
        )

    @property
    def audit_trail(self) -> AuditLog:
        """The audit trail (in the app database, connected on first use)."""
        if self._audit_log is None:
            self._audit_log = AuditLog(self._schema())
        return self._audit_log

    def _database(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = engine_from_settings(self.settings)
        return self._engine

    def _schema(self) -> Schema:
        """One schema for the records and the audit trail: the embedded SQLite migrates once."""
        if self._app_schema is None:
            self._app_schema = Schema(self._database())
        return self._app_schema

    async def close(self) -> None:
        """Release the app database connections, if any were opened."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._app_schema = self._records = self._audit_log = None

    async def describe_run(self, workflow_id: str) -> WorkflowExecutionDescription:
        """What Temporal knows of a run: `NotFound` when there is no such run, or when it belongs
        to another tenant than this client's (which must not learn that it exists)."""
        try:
            described = await self.temporal.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            described = None
        if described is None or (
            self.tenant is not None and described.typed_search_attributes.get(BATON_TENANT) != self.tenant
        ):
            raise NotFound(f"no run {workflow_id}")
        return described

    def get_run(self, workflow_id: str) -> ProcessRun:
        """A handle on an existing run, by workflow ID."""
        handle = self.temporal.get_workflow_handle(workflow_id, result_type=ProcessResult)
        return ProcessRun(handle, self)
