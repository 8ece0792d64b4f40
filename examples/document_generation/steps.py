"""Steps of the seed's DocumentGeneration process.

The writing and reviewing are deterministic text functions for now (`write_draft`,
`review_draft`); the agents issue swaps them for agent calls without touching the process.
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


def write_draft(product: ProductInfo, revision: int, requested: list[str]) -> str:
    """The document text: Overview and Features first, then sections reviewers asked for."""
    parts = [f"# {product.name}", "", "## Overview", product.summary, "", "## Features"]
    parts += [f"- {f}" for f in product.features] or ["- (none listed yet)"]
    for section in requested:
        parts += ["", f"## {section}", _section_text(section, product)]
    parts += ["", f"_Revision {revision}, written for {product.audience}._"]
    return "\n".join(parts)


def _section_text(section: str, product: ProductInfo) -> str:
    if section == "Getting started":
        return f"Install {product.name}, then follow the quick start for {product.audience}."
    if section == "Troubleshooting":
        return f"If {product.name} misbehaves, check its logs first; every error names its cause."
    return f"Notes on {section.lower()} for {product.name}."


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


class DocState(BaseModel):
    product: ProductInfo | None = None
    latest_draft: str = ""
    revision_count: int = 0
    requested_sections: list[str] = Field(default_factory=list)


class GenerateDocumentation(ProcessStep[DocState]):
    @step_function
    async def generate(self, ctx: StepContext, product_info: ProductInfo) -> Draft:
        self.state.product = product_info
        return await self._write(ctx)

    @step_function
    async def revise(self, ctx: StepContext, feedback: list[str]) -> Draft:
        self.state.revision_count += 1
        for section in feedback:
            if section not in self.state.requested_sections:
                self.state.requested_sections.append(section)
        return await self._write(ctx)

    async def _write(self, ctx: StepContext) -> Draft:
        assert self.state.product is not None, "generate runs before revise"
        text = write_draft(self.state.product, self.state.revision_count, self.state.requested_sections)
        self.state.latest_draft = text
        draft = Draft(product=self.state.product, revision=self.state.revision_count, text=text)
        await ctx.emit_event("DocumentationGenerated", draft)
        return draft


class ReviewState(BaseModel):
    reviews: int = 0
    last_feedback: list[str] = Field(default_factory=list)


class ReviewDocumentation(ProcessStep[ReviewState]):
    @step_function
    async def review(self, ctx: StepContext, draft: Draft) -> None:
        self.state.reviews += 1
        missing = review_draft(draft.text)
        self.state.last_feedback = missing
        if missing and draft.revision < MAX_REVISIONS:
            # One section per revision, as a reviewer would ask for the most important first.
            await ctx.emit_event("RevisionNeeded", missing[:1])
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
            await ctx.emit_event("Rejected", [decision.comment or "Rework requested by the approver"])


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
