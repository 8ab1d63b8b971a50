"""SCIM 2.0 (``/scim/v2``): Users and Groups of the organisation whose SCIM token is presented."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response

from api.deps import SessionDep, public
from levqor.settings import get_settings
from tools.enterprise import scim
from tools.enterprise.scim import ScimCaller, ScimError, ScimGroupIn, ScimPatch, ScimUserIn

SCIM_JSON = "application/scim+json"
router = APIRouter(prefix="/scim/v2", tags=["scim"], dependencies=[public()])
Id = Annotated[str, Path(min_length=1, max_length=64)]
Start = Annotated[int, Query(alias="startIndex", ge=1, le=1_000_000)]
Count = Annotated[int, Query(alias="count", ge=0, le=1000)]
Filter = Annotated[str | None, Query(alias="filter", max_length=500)]


def caller(request: Request, session: SessionDep) -> ScimCaller:
    """Authenticate the SCIM bearer token of an organisation."""
    return scim.authenticate(session, request.headers.get("authorization"))


Caller = Annotated[ScimCaller, Depends(caller)]


def _base() -> str:
    return f"{get_settings().base_url.rstrip('/')}/scim/v2"


def _out(body: dict[str, Any], code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=code, media_type=SCIM_JSON)


async def _body(request: Request) -> Any:
    """SCIM clients send ``application/scim+json``, which FastAPI does not parse as JSON on its own."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise ScimError(400, "the body is not JSON", "invalidSyntax", field="body") from exc




@router.get("/ServiceProviderConfig")
def service_provider_config(who: Caller) -> JSONResponse:
    """What this SCIM service supports."""
    return _out({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                 "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                 "filter": {"supported": True, "maxResults": scim.MAX_PAGE}, "changePassword": {"supported": False},
                 "sort": {"supported": False}, "etag": {"supported": False},
                 "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                            "description": "The organisation's SCIM token", "primary": True}]})


@router.get("/Users")
def list_users(who: Caller, session: SessionDep, flt: Filter = None, start: Start = 1,
               count: Count = 100) -> JSONResponse:
    """List provisioned users (``filter=userName eq "..."``)."""
    return _out(scim.list_users(session, who, _base(), flt=flt, start=start, count=count))


@router.post("/Users", status_code=status.HTTP_201_CREATED)
async def create_user(request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Provision a user."""
    body = ScimUserIn.model_validate(await _body(request))
    return _out(await _run(scim.create_user, session, who, _base(), body), 201)


@router.get("/Users/{user_id}")
def get_user(user_id: Id, who: Caller, session: SessionDep) -> JSONResponse:
    """One user."""
    return _out(scim.get_user(session, who, _base(), user_id))


@router.put("/Users/{user_id}")
async def replace_user(user_id: Id, request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Replace a user (``active: false`` deactivates)."""
    body = ScimUserIn.model_validate(await _body(request))
    return _out(await _run(scim.replace_user, session, who, _base(), user_id, body))


@router.patch("/Users/{user_id}")
async def patch_user(user_id: Id, request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Change a user (``{"op": "replace", "value": {"active": false}}`` deactivates at once)."""
    body = ScimPatch.model_validate(await _body(request))
    return _out(await _run(scim.patch_user, session, who, _base(), user_id, body))


@router.delete("/Users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: Id, who: Caller, session: SessionDep) -> Response:
    """Deprovision a user: deactivated, sessions and API keys revoked."""
    scim.delete_user(session, who, user_id)
    return Response(status_code=204)


@router.get("/Groups")
def list_groups(who: Caller, session: SessionDep, flt: Filter = None, start: Start = 1,
                count: Count = 100) -> JSONResponse:
    """List groups (``filter=displayName eq "..."``)."""
    return _out(scim.list_groups(session, who, _base(), flt=flt, start=start, count=count))


@router.post("/Groups", status_code=status.HTTP_201_CREATED)
async def create_group(request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Create a group; its members get the role it maps to."""
    body = ScimGroupIn.model_validate(await _body(request))
    return _out(await _run(scim.create_group, session, who, _base(), body), 201)


@router.get("/Groups/{group_id}")
def get_group(group_id: Id, who: Caller, session: SessionDep) -> JSONResponse:
    """One group with its members."""
    return _out(scim.get_group(session, who, _base(), group_id))


@router.put("/Groups/{group_id}")
async def replace_group(group_id: Id, request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Replace a group's name and members."""
    body = ScimGroupIn.model_validate(await _body(request))
    return _out(await _run(scim.replace_group, session, who, _base(), group_id, body))


@router.patch("/Groups/{group_id}")
async def patch_group(group_id: Id, request: Request, who: Caller, session: SessionDep) -> JSONResponse:
    """Add, remove or replace members, or rename the group."""
    body = ScimPatch.model_validate(await _body(request))
    return _out(await _run(scim.patch_group, session, who, _base(), group_id, body))


@router.delete("/Groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_group(group_id: Id, who: Caller, session: SessionDep) -> Response:
    """Delete a group; its members' roles are recomputed."""
    scim.delete_group(session, who, group_id)
    return Response(status_code=204)


async def _run(fn: Any, *args: Any) -> Any:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)
