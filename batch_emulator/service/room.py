"""What every room of the account shares: its data, the journal, and the request checks.

``Account`` holds the account's data (pools, jobs, the scheduler's hooks, the journal); each room
(``PoolRoom``, ``JobRoom``, ``TaskRoom`` ... in ``pools``, ``jobs``, ``tasks`` ...) is a ``Room`` on it
that adds the rules about one resource, and calls only the rooms it is connected to; ``state.BatchState``
builds and connects them. ``page`` filters, selects and pages the REST items a list operation returns.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable

from batch_emulator.common.errors import invalid_property, missing_property
from batch_emulator.contract.odata import apply_select, compile_filter
from batch_emulator.service.models import MAX_LIST_RESULTS, Job, Pool, SchedulerHooks, _NoHooks

_ID = re.compile(r'[A-Za-z0-9_-]{1,64}')  # fullmatch: 'id\n' is not an id


def _check_id(body: dict, name: str = 'id') -> str:
    value = body.get(name)
    if value is None or value == '':
        raise missing_property(name)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise invalid_property(name, value, 'The id can contain any combination of alphanumeric characters '
                                             'including hyphens and underscores, and cannot contain more than '
                                             '64 characters.')
    return value


def _check_command_line(spec: dict | None, prefix: str) -> None:
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise invalid_property(prefix, spec)
    if not spec.get('commandLine'):
        raise missing_property(f'{prefix}.commandLine' if prefix else 'commandLine')
    for index, resource_file in enumerate(spec.get('resourceFiles') or []):
        sources = [key for key in ('httpUrl', 'storageContainerUrl', 'autoStorageContainerName')
                   if resource_file.get(key)]
        where = f'{prefix + "." if prefix else ""}resourceFiles[{index}]'
        if len(sources) != 1:
            raise invalid_property(where, resource_file, 'Exactly one of httpUrl, storageContainerUrl or '
                                                         'autoStorageContainerName must be specified.')
        if sources[0] == 'autoStorageContainerName':
            raise invalid_property(f'{where}.autoStorageContainerName', resource_file[sources[0]],
                                   'The emulated account has no linked auto-storage account; use a SAS URL.')
        file_path = resource_file.get('filePath')
        if sources[0] == 'httpUrl' and not file_path:
            raise missing_property(f'{where}.filePath')
        if file_path and (file_path.startswith(('/', '\\')) or '..' in re.split(r'[\\/]', file_path)):
            raise invalid_property(f'{where}.filePath', file_path,
                                   'The file path must be relative and may not leave the working directory.')


def page(items: Iterable[dict], *, filter_text: str | None, select: str | None, max_results: int | None,
         skip: int, written: Callable[[dict], dict] = lambda item: item) -> tuple[list[dict], int | None]:
    """Filters, selects and pages REST items; returns the page and the next skip (or None).

    ``written`` turns an item into what the service writes (its defaults filled in): $filter sees
    that, and only the page's items are written when there is no filter.
    """
    predicate = compile_filter(filter_text)
    limit = min(max_results or MAX_LIST_RESULTS, MAX_LIST_RESULTS)
    if predicate is None:
        matched = items if isinstance(items, list) else list(items)
        chunk = [written(item) for item in matched[skip:skip + limit]]
    else:
        matched = [item for item in map(written, items) if predicate(item)]
        chunk = matched[skip:skip + limit]
    next_skip = skip + limit if skip + limit < len(matched) else None
    return [apply_select(item, select) for item in chunk], next_skip


class Account:
    """The account's data, which every room shares: its pools and jobs, the scheduler's hooks, the journal.

    A change to an entity goes through ``changed``: its written bodies are dropped, the journal records it,
    and the rooms that keep counts of their own (``watchers``: active jobs, schedules to look at) hear of it.
    """

    def __init__(self, account_name: str, base_url: str, nodes_dir: str) -> None:
        self.account_name = account_name
        self.base_url = base_url
        self.nodes_dir = nodes_dir
        self.pools: dict[str, Pool] = {}
        self.jobs: dict[str, Job] = {}
        self.hooks: SchedulerHooks = _NoHooks()  # type: ignore[assignment]
        self.journal = None  # persistence.Journal with --location: records every change
        self.pending_restart: deque[Pool] = deque()  # pools whose nodes reboot after a restart
        self.container_runtime_setting: str | None = None  # --container-runtime
        self.container_runtime: tuple[str, ...] | None = None  # found when a container pool is first created
        self.watchers: list[Room] = []

    def changed(self, kind: str, entity: object) -> None:
        if getattr(entity, 'written', None) is not None:
            entity.written = None  # its bodies are written again when next asked for (wire.py)
        if self.journal is not None:
            self.journal.changed(kind, entity)
        for room in self.watchers:
            room.noticed_change(kind, entity)

    def removed(self, kind: str, entity: object) -> None:
        if self.journal is not None:
            self.journal.removed(kind, entity)
        for room in self.watchers:
            room.noticed_removal(kind, entity)


def shared(name: str, owner: str = 'account') -> property:
    """An attribute kept by another object (the account, or a room), read and set through this one."""
    def get(self):
        return getattr(getattr(self, owner), name)

    def put(self, value) -> None:
        setattr(getattr(self, owner), name, value)
    return property(get, put, doc=f'{owner}.{name}')


class AccountData:
    """The account's data, read and set through ``self.account``: what every room and the whole state reach."""

    account: Account
    pools = shared('pools')
    jobs = shared('jobs')
    hooks = shared('hooks')
    journal = shared('journal')
    base_url = shared('base_url')
    account_name = shared('account_name')
    nodes_dir = shared('nodes_dir')
    pending_restart = shared('pending_restart')
    container_runtime = shared('container_runtime')
    container_runtime_setting = shared('container_runtime_setting')


class Room(AccountData):
    """One resource's rules. It reads and changes the account's data, and calls only the rooms it is
    connected to (each room's ``connect`` names them); ``state.BatchState`` builds and connects them all."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def changed(self, kind: str, entity: object) -> None:
        self.account.changed(kind, entity)

    def _removed(self, kind: str, entity: object) -> None:
        self.account.removed(kind, entity)

    def noticed_change(self, kind: str, entity: object) -> None:
        """A watcher's counts follow the account's changes (see ``Account.watchers``)."""

    def noticed_removal(self, kind: str, entity: object) -> None:
        """A watcher's counts follow the account's removals."""
