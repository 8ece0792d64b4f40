"""The seed's orchestration examples, one per pattern, with the agents in examples/agents.

Run them all on an embedded Temporal with the local model:  python -m examples.orchestrations
or one at a time from the command line (see the README), e.g.
    baton orchestrate group-chat --agents Developer,QA,BusinessAnalyst --task "..." --manager llm
"""

from __future__ import annotations

import asyncio
import os

from baton.starter.client import BatonClient, PendingOrchestration


def examples(baton: BatonClient) -> dict[str, PendingOrchestration]:
    return {
        "sequential": baton.run_sequential(
            "Quarterly report: revenue 4.2M (+12%), churn 3.1%, 1,200 new customers.",
            ["DataExtraction", "Analysis", "ReportGeneration"],
        ),
        "concurrent": baton.run_concurrent(
            "Should we enter the European EV-charging market?",
            ["MarketAnalysis", "CompetitorAnalysis", "TrendAnalysis"],
            aggregator="ReportGeneration",
        ),
        "group-chat": baton.run_group_chat(
            "Plan single sign-on for the billing portal.",
            ["Developer", "QA", "BusinessAnalyst"],
            manager="llm",
        ),
        "handoff": baton.run_handoff(
            "A customer reports that invoices show the wrong VAT rate.",
            ["BusinessAnalyst", "Developer", "QA"],
            routes={"BusinessAnalyst": ["Developer"], "Developer": ["QA"], "QA": []},
        ),
        "magentic": baton.run_magentic(
            "Assess the market for home batteries and recommend a launch plan.",
            ["MarketAnalysis", "TrendAnalysis", "ReportGeneration"],
        ),
    }


async def main() -> None:
    from baton.settings import get_settings
    from baton.testing import ProcessEnvironment

    async with ProcessEnvironment(settings=get_settings()) as env:
        for pattern, pending in examples(env.client).items():
            result = await pending
            print(f"\n=== {pattern}: {result.rounds} round(s), {result.termination}")
            for turn in result.transcript[1:]:
                first_line = (turn.content.splitlines() or [""])[0]
                print(f"  round {turn.round} {turn.speaker}: {first_line[:100]}")


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)
