"""Steps of the seed's DocumentGeneration process.

The writing and the reviewing are done by agents (`Writer` and `Reviewer`, agent steps of the
process); these steps keep the state around them: what to write, which revision this is, and
whether the draft has every required section.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from baton.process import NoState, ProcessStep, StepContext, step_function

REQUIRED_SECTIONS = ["Overview", "Features", "Getting started", "Troubleshooting"]
MAX_REVISIONS = 3


class ProductRequest(BaseModel):
    """What the process starts from."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    features: list[str] = Field(default_factory=list)
    audience: str = "developers"


class ProductInfo(BaseModel):
    name: str
    summary: str
    features: list[str]
    audience: str


class Draft(BaseModel):
    product: ProductInfo
    revision: int
    text: str


class ApprovalDecision(BaseModel):
    """A person's answer to the approval request."""

    approved: bool
    comment: str = ""


class ApprovedDraft(BaseModel):
    draft: Draft
    comment: str = ""


class PublishedDocument(BaseModel):
    title: str
    revision: int
    text: str
    approval_comment: str


def writing_brief(product: ProductInfo, revision: int, requested: list[str], notes: str) -> str:
    """What the writer agent is asked: the product, the audience and the sections to write."""
    lines = [
        f"Write the documentation of {product.name} for {product.audience}.",
        f"Summary: {product.summary}",
        "Features: " + ("; ".join(product.features) or "none listed yet"),
        "Sections: " + "; ".join(["Overview", "Features", *requested]),
    ]
    if revision:
        lines.append(f"This is revision {revision}." + (f" Reviewer notes: {notes}" if notes else ""))
    return "\n".join(lines)


def review_request(draft: Draft) -> str:
    required = ", ".join(REQUIRED_SECTIONS)
    return f"Review this draft of the {draft.product.name} documentation (required sections: {required}).\n\n{draft.text}"


def review_draft(text: str) -> list[str]:
    """Required sections the draft lacks, in order; empty when it passes review."""
    return [s for s in REQUIRED_SECTIONS if f"## {s}" not in text]


class GatherProductInfo(ProcessStep[NoState]):
    @step_function
    async def gather(self, ctx: StepContext, request: ProductRequest) -> ProductInfo:
        summary = request.description or f"{request.name} helps {request.audience} get their work done."
        return ProductInfo(
            name=request.name, summary=summary, features=request.features, audience=request.audience
        )


class Feedback(BaseModel):
    """What a revision must add: missing sections, and the reviewer's or approver's notes."""

    sections: list[str] = Field(default_factory=list)
    notes: str = ""


class DocState(BaseModel):
    product: ProductInfo | None = None
    revision_count: int = 0
    requested_sections: list[str] = Field(default_factory=list)
    reviewer_notes: str = ""


class GenerateDocumentation(ProcessStep[DocState]):
    """Briefs the writer agent, and turns what it wrote into a numbered draft."""

    @step_function
    async def generate(self, ctx: StepContext, product_info: ProductInfo) -> None:
        self.state.product = product_info
        await self._brief(ctx)

    @step_function
    async def revise(self, ctx: StepContext, feedback: Feedback) -> None:
        self.state.revision_count += 1
        self.state.reviewer_notes = feedback.notes
        for section in feedback.sections:
            if section not in self.state.requested_sections:
                self.state.requested_sections.append(section)
        await self._brief(ctx)

    @step_function
    async def record(self, ctx: StepContext, text: str) -> Draft:
        assert self.state.product is not None, "generate runs before record"
        draft = Draft(product=self.state.product, revision=self.state.revision_count, text=text)
        await ctx.emit_event("DocumentationGenerated", draft)
        return draft

    async def _brief(self, ctx: StepContext) -> None:
        assert self.state.product is not None, "generate runs before revise"
        brief = writing_brief(
            self.state.product,
            self.state.revision_count,
            self.state.requested_sections,
            self.state.reviewer_notes,
        )
        await ctx.emit_event("WriteRequested", brief)


class ReviewState(BaseModel):
    reviews: int = 0
    draft: Draft | None = None
    last_missing: list[str] = Field(default_factory=list)


class ReviewDocumentation(ProcessStep[ReviewState]):
    """Asks the reviewer agent for notes, checks the required sections, decides what happens next."""

    @step_function
    async def review(self, ctx: StepContext, draft: Draft) -> None:
        self.state.draft = draft
        await ctx.emit_event("ReviewRequested", review_request(draft))

    @step_function
    async def decide(self, ctx: StepContext, notes: str) -> None:
        draft = self.state.draft
        assert draft is not None, "review runs before decide"
        self.state.reviews += 1
        missing = review_draft(draft.text)
        self.state.last_missing = missing
        if missing and draft.revision < MAX_REVISIONS:
            # One section per revision, as a reviewer would ask for the most important first.
            await ctx.emit_event("RevisionNeeded", Feedback(sections=missing[:1], notes=notes))
        else:
            await ctx.emit_event("DraftApproved", draft)


class ApprovalState(BaseModel):
    decisions: int = 0
    last_comment: str = ""


class HumanApproval(ProcessStep[ApprovalState]):
    """Joins the reviewed draft with a person's decision (an external event): a fan-in."""

    @step_function
    async def decide(self, ctx: StepContext, draft: Draft, decision: ApprovalDecision) -> None:
        self.state.decisions += 1
        self.state.last_comment = decision.comment
        if decision.approved:
            await ctx.emit_event("Approved", ApprovedDraft(draft=draft, comment=decision.comment))
        else:
            # The approver's comment names what the next revision must cover.
            await ctx.emit_event(
                "Rejected",
                Feedback(
                    sections=[decision.comment] if decision.comment else [],
                    notes=decision.comment or "Rework requested by the approver",
                ),
            )


class PublishDocumentation(ProcessStep[NoState]):
    @step_function
    async def publish(self, ctx: StepContext, approved: ApprovedDraft) -> PublishedDocument:
        draft = approved.draft
        return PublishedDocument(
            title=draft.product.name,
            revision=draft.revision,
            text=draft.text,
            approval_comment=approved.comment,
        )
