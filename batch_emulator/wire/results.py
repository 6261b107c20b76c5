"""What a handler is given and what it gives back: behaviour only, never HTTP.

A handler (``pool_routes``, ``job_routes``, ``file_routes``, ``node_routes``, ``schedule_routes``) is
``async def handler(ctx: Context) -> Result``: the account's state, the path's parameters, the query and
the body already read and checked by the contract (``checks.py``). It answers with one of the results
below; ``adapter.py`` alone turns it into the service's answer: the status the spec lists for the
operation, the headers the spec and ``contract/recorded.py`` say it carries, and the body rendered from
the operation's response schema in the request's api-version.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping, Sequence

from batch_emulator.runtime.scheduler import Scheduler
from batch_emulator.service.state import BatchState


@dataclasses.dataclass(frozen=True)
class Context:
    state: BatchState
    scheduler: Scheduler
    params: Mapping[str, str]  # the path's parameters: poolId, jobId, filePath...
    query: Mapping[str, str]
    body: dict  # parsed and checked by the operation's body schema ({} when the operation takes none)
    headers: Mapping[str, str]  # the request's headers (ocp-range)
    path: str  # the request's path, as sent
    base_url: str
    api_version: str


@dataclasses.dataclass(frozen=True)
class Done:
    """An action's or a change's outcome, without a body: the entity's ETag and Last-Modified when the service
    writes them, and for a create the new entity's path (Location; DataServiceId)."""
    etag: str | None = None
    last_modified: datetime.datetime | None = None
    location: str | None = None


def stamped(entity) -> Done:
    """A change's outcome: the changed entity's ETag and Last-Modified."""
    return Done(entity.etag, entity.last_modified)


@dataclasses.dataclass(frozen=True)
class Entity:
    """One entity: its resource, written as ``{entity_set}/@Element``."""
    value: dict
    entity_set: str
    etag: str | None = None
    last_modified: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True)
class KeptEntity:
    """An entity whose written bodies are kept until it changes (a task: ``bodies.py``); ``build`` gives its
    resource."""
    entity: object
    build: Callable[[object], dict]
    entity_set: str


@dataclasses.dataclass(frozen=True)
class Page:
    """A list: $filter, $select, maxresults and $skiptoken of the query applied by the adapter."""
    items: Sequence[dict]
    entity_set: str


@dataclasses.dataclass(frozen=True)
class KeptPage:
    """A list of entities whose bodies are kept (tasks): only the page is written."""
    entities: Sequence[object]
    build: Callable[[object], dict]
    entity_set: str
    build_property: Callable[[object, str], object] | None = None


@dataclasses.dataclass(frozen=True)
class Body:
    """Any other answer with a body (an autoscale run, remote login settings, the result of an upload or of a
    task collection): ``metadata`` is its ``odata.metadata`` fragment."""
    value: dict
    metadata: str


@dataclasses.dataclass(frozen=True)
class File:
    """A file's properties (HEAD) or its bytes ``start`` .. ``start + size`` (GET), read by the adapter."""
    path: str
    length: int
    start: int
    size: int
    directory: bool
    url: str
    mode: str
    content_type: str
    last_modified: datetime.datetime


Result = Done | Entity | KeptEntity | Page | KeptPage | Body | File
