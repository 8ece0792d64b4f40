"""The seed's DocumentGeneration process: gather, write and review (agents, with revisions),
a person's approval, publish. `baton process run baton.examples.document_generation.process:process`."""

from baton.agents.registry import AgentRegistry
from baton.examples import AGENTS, STEP_MODULES
from baton.process import ProcessBuilder

from .steps import (
    GatherProductInfo,
    GenerateDocumentation,
    HumanApproval,
    PublishDocumentation,
    ReviewDocumentation,
)

START = "Start"
APPROVAL = "ApprovalReceived"


def build() -> ProcessBuilder:
    b = ProcessBuilder(
        "DocumentGeneration",
        description="Gather product info, write and review documentation with agents, get it approved, publish it.",
        max_supersteps=60,
    )
    gather = b.add_step(GatherProductInfo, local=True)
    generate = b.add_step(GenerateDocumentation)
    writer = b.add_agent("Writer")
    review = b.add_step(ReviewDocumentation)
    reviewer = b.add_agent("Reviewer")
    approval = b.add_step(HumanApproval)
    publish = b.add_step(PublishDocumentation)

    b.on_input_event(START).send_event_to(gather)
    gather.on_function_result().send_event_to(generate, function="generate")
    generate.on_event("WriteRequested").send_event_to(writer)
    writer.on_function_result().send_event_to(generate, function="record")
    generate.on_event("DocumentationGenerated").send_event_to(review, function="review")
    review.on_event("ReviewRequested").send_event_to(reviewer)
    reviewer.on_function_result().send_event_to(review, function="decide")
    review.on_event("RevisionNeeded").send_event_to(generate, function="revise")
    review.on_event("DraftApproved").send_event_to(approval, parameter="draft")
    b.on_input_event(APPROVAL).send_event_to(approval, parameter="decision")
    approval.on_event("Rejected").send_event_to(generate, function="revise")
    approval.on_event("Approved").send_event_to(publish)
    publish.on_function_result().stop_process()
    return b


# Built against the examples' own steps and agents, so it imports the same whatever is configured.
process = build().build(STEP_MODULES, AgentRegistry.from_dirs([AGENTS]))
