"""Parsing the documents people send (process definitions, agent files): YAML and JSON.

Python's parsers recurse once per level of nesting, so a document nested a few thousand levels
deep raises `RecursionError`, which no caller expects from bad input. Here it is the parser's own
error, so every caller's "not valid YAML/JSON" handling covers it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`; a document nested too deeply raises `yaml.YAMLError`."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise yaml.YAMLError("the document is nested too deeply") from None


def load_json(text: str | bytes) -> Any:
    """`json.loads(text)`; a document nested too deeply raises `ValueError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None
