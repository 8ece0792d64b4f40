"""Multi-agent orchestration patterns as durable workflows: models, the transcript, managers."""

from .managers import GroupChatManager, LlmManager, RoundRobinManager, chat_manager
from .models import (
    ChatTurn,
    ConcurrentInput,
    GroupChatInput,
    HandoffInput,
    HumanInput,
    HumanReply,
    MagenticInput,
    ManagerSpec,
    OrchestrationProgress,
    OrchestrationResult,
    SequentialInput,
)

__all__ = [
    "ChatTurn",
    "ConcurrentInput",
    "GroupChatInput",
    "GroupChatManager",
    "HandoffInput",
    "HumanInput",
    "HumanReply",
    "LlmManager",
    "MagenticInput",
    "ManagerSpec",
    "OrchestrationProgress",
    "OrchestrationResult",
    "RoundRobinManager",
    "SequentialInput",
    "chat_manager",
]
