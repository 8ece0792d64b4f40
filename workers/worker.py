"""Workers: which workflows and activities each Baton task queue serves."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from baton.activities.access import AccessActivities
from baton.activities.compliance import ComplianceActivities
from baton.activities.llm import LlmActivities, llm_activities
from baton.activities.steps import StepActivities
from baton.activities.tools import run_tool
from baton.agents import AgentRegistry
from baton.agents.tools import import_modules
from baton.compliance import (
    ANCHOR_AUDIT_CHAIN_ACTIVITY,
    RETENTION_SWEEP_EVERY,
    SWEEP_EVERY,
    AnchorResult,
    AuditAnchor,
    AuditLog,
    ProcessingRecords,
    WatchInput,
    WitnessInput,
    retention_sweep_schedule_id,
    sweep_schedule_id,
    watch_workflow_id,
    witness_workflow_id,
)
from baton.compliance.gauges import kept_current as compliance_gauges
from baton.settings import BatonSettings
from baton.telemetry import logs as telemetry_logs
from baton.temporal import ConfigurationError, converter_keys, encryption_codec, payload_store
from baton.workflows.agent import AgentWorkflow
from baton.workflows.compliance import (
    AuditWatchWorkflow,
    AuditWitnessWorkflow,
    DataSubjectRequestWorkflow,
    RetentionSweepWorkflow,
    StoredPayloadSweepWorkflow,
    SubjectRetentionWorkflow,
)
from baton.workflows.orchestrations import ORCHESTRATIONS
from baton.workflows.process import ProcessWorkflow

log = logging.getLogger(__name__)


def build_workers(
    client: Client,
    settings: BatonSettings,
    queues: Sequence[str],
    *,
    llm: LlmActivities | None = None,
    allowed_modules: Sequence[str] | None = None,
) -> list[Worker]:
    """One worker per queue.

    The workflows queue runs the workflows, and step activities too: steps without a queue of
    their own run there (started eagerly by the worker that scheduled them), a step marked
    `local` runs as a local activity in the workflow worker, as does the check that a run may
    use its agents. The LLM queue runs LLM and tool calls (it needs `llm`). The compliance
    queue runs the compliance workflows and their activities. Any other queue
    (`BATON_STEPS_QUEUE` when set, or a step's own `task_queue`) runs step activities.
    """
    steps = StepActivities(allowed_modules if allowed_modules is not None else settings.step_modules)
    workers = []
    for queue in dict.fromkeys(queues):
        kwargs: dict[str, Any] = {"activities": [steps.run_step]}
        if queue == settings.compliance_queue:
            store = payload_store(client.data_converter)
            compliance = ComplianceActivities(
                client, store, AuditLog(store.schema), compliance_records(client), settings
            )
            kwargs = {
                "workflows": [
                    StoredPayloadSweepWorkflow,
                    AuditWitnessWorkflow,
                    SubjectRetentionWorkflow,
                    RetentionSweepWorkflow,
                    DataSubjectRequestWorkflow,
                    AuditWatchWorkflow,
                ],
                "activities": [
                    compliance.sweep_stored_payloads,
                    compliance.anchor_audit_chain,
                    compliance.retention_state,
                    compliance.delete_due_records,
                    compliance.retention_hold,
                    compliance.retention_release,
                    compliance.retention_shift,
                    compliance.sweep_due_records,
                    compliance.subject_request_audit,
                    compliance.subject_access,
                    compliance.subject_erasure,
                    compliance.subject_rectification,
                    compliance.scan_audit,
                    compliance.send_alert,
                ],
            }
        elif queue == settings.workflows_queue:
            access = AccessActivities(
                converter_keys(client.data_converter), AgentRegistry.from_dirs(settings.agent_dirs)
            )
            kwargs["workflows"] = [ProcessWorkflow, AgentWorkflow, *ORCHESTRATIONS]
            kwargs["activities"] = [steps.run_step, access.check_agent_access]
        elif queue == settings.llm_queue:
            if llm is None:
                raise ValueError("the LLM queue's worker needs the LLM activities")
            kwargs = {
                "activities": [llm.complete, run_tool],
                "max_task_queue_activities_per_second": settings.llm_rate_limit,
            }
        if "workflows" in kwargs:
            kwargs["max_cached_workflows"] = settings.workflow_cache_size
        graceful = timedelta(seconds=settings.worker_shutdown_seconds)
        workers.append(Worker(client, task_queue=queue, graceful_shutdown_timeout=graceful, **kwargs))
    return workers


@contextlib.asynccontextmanager
async def running_workers(
    client: Client,
    settings: BatonSettings,
    queues: Sequence[str] | None = None,
    *,
    allowed_modules: Sequence[str] | None = None,
) -> AsyncIterator[list[Worker]]:
    """Run workers for `queues` (all of Baton's by default) until the block exits."""
    queues = queues or settings.all_queues
    telemetry_logs.content_recorded = settings.telemetry_content
    async with contextlib.AsyncExitStack() as stack:
        if settings.workflows_queue in queues:
            import_modules(settings.manager_modules)
        llm = None
        if settings.llm_queue in queues:
            import_modules(settings.tool_modules)
            # No transport retries: Temporal owns retries, with the provider's Retry-After.
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=settings.llm_timeout_seconds, transport=httpx.AsyncHTTPTransport(retries=0)
                )
            )
            redis = Redis.from_url(settings.redis_url.get_secret_value()) if settings.redis_url else None
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            # The client's own keyring: one per process, so a rotation reaches the codec and the
            # LLM cache at once.
            llm = llm_activities(settings, http, redis, converter_keys(client.data_converter))
        workers = build_workers(client, settings, queues, llm=llm, allowed_modules=allowed_modules)
        if settings.compliance_queue in queues:
            await install_compliance(client, settings)
            await stack.enter_async_context(compliance_gauges(client, compliance_records(client)))
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


def compliance_records(client: Client) -> ProcessingRecords:
    """The processing records, in the app database of the client's converter, with its subjects'
    keys; an error for a converter that has none (a compliance worker cannot work without)."""
    subjects = encryption_codec(client.data_converter).subjects
    if subjects is None:
        raise ConfigurationError("the compliance worker's data converter has no data-subject keys")
    return ProcessingRecords(payload_store(client.data_converter).schema, subjects)


async def install_compliance(client: Client, settings: BatonSettings) -> None:
    """Create what the compliance queue runs on its own, where it is missing: the hourly
    stored-payload sweep and the daily retention sweep (Temporal Schedules, under Schedules in
    the UI), the audit witness and the audit watch. Idempotent: workers serving the queue call it as they start."""
    queue = settings.compliance_queue
    await _ensure_schedule(
        client,
        sweep_schedule_id(queue),
        StoredPayloadSweepWorkflow.run,
        f"{queue}-stored-payload-sweep-run",
        SWEEP_EVERY,
        queue,
    )
    await _ensure_schedule(
        client,
        retention_sweep_schedule_id(queue),
        RetentionSweepWorkflow.run,
        f"{queue}-retention-sweep-run",
        RETENTION_SWEEP_EVERY,
        queue,
    )
    await start_witness(client, settings)
    await client.start_workflow(
        AuditWatchWorkflow.run,
        WatchInput(),
        id=watch_workflow_id(queue),
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def start_witness(client: Client, settings: BatonSettings) -> None:
    """Start the audit witness unless it runs. One that stopped (terminated, say) is followed by
    a witness holding its anchors: a new one with none would vouch for whatever the table holds
    now, a rewrite included."""
    workflow_id = witness_workflow_id(settings.compliance_queue)
    handle = client.get_workflow_handle(workflow_id)
    anchors: list[AuditAnchor] = []
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            anchors = await _anchors_kept_by(client, handle)
            log.warning(
                "the audit witness %s had stopped; started again with its %d anchors",
                workflow_id,
                len(anchors),
            )
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:  # never started: a first witness has no anchors
            raise
    await client.start_workflow(
        AuditWitnessWorkflow.run,
        WitnessInput(anchors=anchors),
        id=workflow_id,
        task_queue=settings.compliance_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def _anchors_kept_by(client: Client, handle: WorkflowHandle) -> list[AuditAnchor]:
    """The anchors of a witness run that has closed, read from its history: those it was started
    with, then each head its anchoring activity returned."""
    converter = client.data_converter
    anchors: list[AuditAnchor] = []
    anchoring: set[int] = set()  # event IDs of scheduled anchoring activities
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_started_event_attributes"):
            [input] = await converter.decode(
                event.workflow_execution_started_event_attributes.input.payloads, [WitnessInput]
            )
            anchors = list(input.anchors)
        elif event.activity_task_scheduled_event_attributes.activity_type.name == ANCHOR_AUDIT_CHAIN_ACTIVITY:
            anchoring.add(event.event_id)
        elif event.activity_task_completed_event_attributes.scheduled_event_id in anchoring:
            [result] = await converter.decode(
                event.activity_task_completed_event_attributes.result.payloads, [AnchorResult]
            )
            if result.broken is None and (not anchors or result.head.seq > anchors[-1].seq):
                anchors.append(result.head)
    return anchors


async def _ensure_schedule(
    client: Client, schedule_id: str, workflow: Any, run_id: str, every: timedelta, queue: str
) -> None:
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(workflow, id=run_id, task_queue=queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                # A sweep still running when the next is due: skip that one.
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        pass
