"""Process templates: deployed process definitions, versioned. Creating a version needs the
TemplateManagement policy; reading them, Read."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, HTTPException, Query, Request

from baton.api.deps import (
    MAX_VERSION,
    Reader,
    TemplateManagement,
    TemplateName,
    Version,
    baton_for,
    check_agents,
)
from baton.api.problems import documented
from baton.documents import load_json, load_yaml
from baton.errors import NotFound
from baton.persistence.definitions import DefinitionStore
from baton.process import ProcessDefinitionError, load_process
from baton.starter.api_models import Template, TemplateVersion
from baton.starter.client import BatonClient

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=documented(401, 403, 429))
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


def _store(request: Request) -> DefinitionStore:
    client: BatonClient = request.app.state.baton
    return client.definitions


@router.get("")
async def list_templates(request: Request, who: Reader) -> list[TemplateVersion]:
    """Every template with a version new runs take: that latest version."""
    return [TemplateVersion.of(d) for d in await _store(request).latest()]


@router.get("/{name}", responses=documented(404))
async def show_template(
    request: Request,
    name: TemplateName,
    who: Reader,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Template:
    """A template's definition (the version new runs take, or `version`) and its Mermaid flowchart."""
    deployed = await _store(request).get(name, version)
    baton: BatonClient = request.app.state.baton
    process = load_process(deployed.definition, baton.settings.step_modules, baton.agents)
    return Template(
        **TemplateVersion.of(deployed).model_dump(),
        definition=deployed.definition,
        mermaid=process.to_mermaid(),
    )


@router.get("/{name}/versions", responses=documented(404))
async def template_versions(request: Request, name: TemplateName, who: Reader) -> list[TemplateVersion]:
    """Every version of the template, the retired ones included."""
    versions = await _store(request).versions(name)
    if not versions:
        raise NotFound(f"no deployed process {name!r}")
    return [TemplateVersion.of(d) for d in versions]


@router.post(
    "",
    status_code=201,
    responses=documented(415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ProcessDefinition"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_template(request: Request, who: TemplateManagement) -> TemplateVersion:
    """A new version of a template, from its definition in JSON or YAML (`Content-Type:
    application/yaml`), checked against the step code and agents this deployment allows, every
    problem listed at once (422)."""
    baton = baton_for(request, who)
    process = load_process(await _definition(request), baton.settings.step_modules, baton.agents)
    check_agents(who, process.compiled.agents(), baton.agents)
    store = _store(request)
    version = await store.deploy(process.to_definition())
    await baton.audit("template.create", None, {"version": version}, resource=f"template:{process.name}")
    return TemplateVersion.of(await store.get(process.name, version))


@router.post("/{name}/versions/{version}/retire", responses=documented(404))
async def retire_template_version(
    request: Request, name: TemplateName, version: Version, who: TemplateManagement
) -> TemplateVersion:
    """Retire a version: new runs take the latest version not retired; runs of this one keep it."""
    retired = await _store(request).retire(name, version)
    await baton_for(request, who).audit(
        "template.retire", None, {"version": version}, resource=f"template:{name}"
    )
    return TemplateVersion.of(retired)


async def _definition(request: Request) -> dict[str, Any]:
    body = await request.body()
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json" and kind not in YAML_TYPES:
        raise HTTPException(415, f"send the definition as application/json or application/yaml, not {kind}")
    try:
        source = load_yaml(body.decode()) if kind in YAML_TYPES else load_json(body)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise ProcessDefinitionError("definition", [f"not valid {kind}: {e}"]) from None
    if not isinstance(source, dict):
        raise ProcessDefinitionError("definition", ["a definition is a mapping with name, steps and routes"])
    return source
