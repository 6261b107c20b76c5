"""The emulated Batch account: pools, nodes, jobs and tasks as plain data.

This module is the single source of truth and the one place where requests are
validated. Routes call its methods and serialise what they return; the
scheduler (``hooks``) is told when something happened that may let a task run,
and reports back through the ``*_started`` / ``*_finished`` methods. Nothing
here runs a process or formats an HTTP response.

Ids are case-insensitive and case-preserving, as in the service: entities are
keyed by their lower-cased id.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from . import images
from .errors import BatchServiceError, invalid_property, missing_property
from .odata import apply_select, compile_filter

_ID = re.compile(r'[A-Za-z0-9_-]{1,64}')  # fullmatch: 'id\n' is not an id
MAX_TASKS_PER_COLLECTION = 100
MAX_LIST_RESULTS = 1000
MAX_TASK_SLOTS = 256  # taskSlotsPerNode: at most 4 x the VM's cores and never more than 256 (the spec)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: datetime.datetime | None) -> str | None:
    """ISO 8601 UTC as the service writes it: ``Z``, the fraction's trailing zeros dropped."""
    if moment is None:
        return None
    text = moment.strftime('%Y-%m-%dT%H:%M:%S.%f').rstrip('0').rstrip('.')
    return text + 'Z'


def parse_iso(text: str | None) -> datetime.datetime | None:
    """The inverse of ``iso`` (any number of fraction digits, or none)."""
    if not text:
        return None
    whole, _, fraction = text.rstrip('Z').partition('.')
    moment = datetime.datetime.strptime(whole, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    return moment.replace(microsecond=int((fraction + '000000')[:6]))


_TICKS_AT_EPOCH = 621355968000000000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01
_last_stamp = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def etag_for(moment: datetime.datetime) -> str:
    """The service's ETag: 0x and the upper-case hex of the .NET tick count of lastModified."""
    ticks = _TICKS_AT_EPOCH + (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) \
        // datetime.timedelta(microseconds=1) * 10
    return f'0x{ticks:X}'


def stamp() -> tuple[str, datetime.datetime]:
    """(ETag, lastModified) of a change: the time now, never the same as the change before."""
    global _last_stamp
    moment = max(utc_now(), _last_stamp + datetime.timedelta(microseconds=1))
    _last_stamp = moment
    return etag_for(moment), moment


def retry_delay(retry_count: int) -> float:
    """The back-off before a failed task's (or start task's) next try: 0.1 s, doubling, at most 30 s."""
    return min(0.1 * 2 ** max(retry_count - 1, 0), 30.0)


class SchedulerHooks(Protocol):
    def pool_created(self, pool: Pool) -> None: ...
    def pool_deleted(self, pool: Pool) -> None: ...
    def work_available(self) -> None: ...
    def stop_task(self, task: Task) -> None: ...
    def requeue_task(self, task: Task) -> None: ...
    def job_ended(self, job: Job) -> None: ...


class _NoHooks:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclasses.dataclass(eq=False)
class Node:
    id: str
    pool_id: str
    root_dir: str
    ip_address: str
    state: str = 'creating'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    allocation_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    last_boot_time: datetime.datetime | None = None
    scheduling_state: str = 'enabled'
    start_task_info: dict | None = None
    running: dict[str, Task] = dataclasses.field(default_factory=dict)
    running_slots: int = 0
    total_tasks_run: int = 0
    total_tasks_succeeded: int = 0
    recent_tasks: deque = dataclasses.field(default_factory=lambda: deque(maxlen=5))
    prepared_jobs: dict[str, dict] = dataclasses.field(default_factory=dict)  # job key -> prep/release status
    errors: list[dict] = dataclasses.field(default_factory=list)

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_transition_time = utc_now()


@dataclasses.dataclass(eq=False)
class Pool:
    id: str
    spec: dict
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    allocation_state: str = 'resizing'
    allocation_state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    resize_errors: list[dict] = dataclasses.field(default_factory=list)
    pending: deque = dataclasses.field(default_factory=deque)  # tasks waiting for a slot, in order

    @property
    def slots_per_node(self) -> int:
        return int(self.spec.get('taskSlotsPerNode') or 1)

    def touch(self) -> None:
        self.etag, self.last_modified = stamp()


@dataclasses.dataclass(eq=False)
class Task:
    id: str
    job_id: str
    spec: dict
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    execution_info: dict = dataclasses.field(default_factory=lambda: {'retryCount': 0, 'requeueCount': 0})
    node_info: dict | None = None
    node: Node | None = None
    terminate_requested: bool = False
    process_id: int | None = None  # of the running process (its group), so a restarted emulator can stop it
    process_start_time: int | None = None  # the process's start time: a reused process id is never touched
    not_before: float = 0.0  # monotonic time before which a retry does not start (its back-off)

    @property
    def required_slots(self) -> int:
        return int(self.spec.get('requiredSlots') or 1)


@dataclasses.dataclass(eq=False)
class Job:
    id: str
    spec: dict
    pool_id: str
    etag: str
    creation_time: datetime.datetime
    last_modified: datetime.datetime
    state: str = 'active'
    state_transition_time: datetime.datetime = dataclasses.field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: datetime.datetime | None = None
    execution_info: dict = dataclasses.field(default_factory=dict)
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: {'active': 0, 'running': 0, 'completed': 0, 'succeeded': 0, 'failed': 0})
    slot_counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: {'active': 0, 'running': 0, 'completed': 0, 'succeeded': 0, 'failed': 0})

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.previous_state, self.previous_state_transition_time = self.state, self.state_transition_time
            self.state, self.state_transition_time = state, utc_now()
            self.etag, self.last_modified = stamp()


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


def _pool_resource(pool: Pool, base_url: str) -> dict:
    nodes = list(pool.nodes.values())
    body = {
        'id': pool.id,
        'url': f'{base_url}/pools/{pool.id}',
        'eTag': pool.etag,
        'lastModified': iso(pool.last_modified),
        'creationTime': iso(pool.creation_time),
        'state': pool.state,
        'stateTransitionTime': iso(pool.state_transition_time),
        'allocationState': pool.allocation_state,
        'allocationStateTransitionTime': iso(pool.allocation_state_transition_time),
        'vmSize': pool.spec['vmSize'].lower(),
        'resizeTimeout': pool.spec.get('resizeTimeout', 'PT15M'),
        'currentDedicatedNodes': len(nodes),
        'currentLowPriorityNodes': 0,
        'targetDedicatedNodes': int(pool.spec.get('targetDedicatedNodes') or 0),
        'targetLowPriorityNodes': int(pool.spec.get('targetLowPriorityNodes') or 0),
        'enableAutoScale': False,
        'enableInterNodeCommunication': bool(pool.spec.get('enableInterNodeCommunication', False)),
        'taskSlotsPerNode': pool.slots_per_node,
        'taskSchedulingPolicy': pool.spec.get('taskSchedulingPolicy', {'nodeFillType': 'spread'}),
    }
    for key in ('displayName', 'virtualMachineConfiguration', 'startTask', 'metadata', 'userAccounts',
                'applicationPackageReferences', 'networkConfiguration', 'mountConfiguration', 'upgradePolicy'):
        if key in pool.spec:
            body[key] = pool.spec[key]
    if pool.resize_errors:
        body['resizeErrors'] = pool.resize_errors
    return body


def _node_resource(node: Node, pool: Pool, base_url: str) -> dict:
    body = {
        'id': node.id,
        'url': f'{base_url}/pools/{pool.id}/nodes/{node.id}',
        'state': node.state,
        'schedulingState': node.scheduling_state,
        'stateTransitionTime': iso(node.state_transition_time),
        'lastBootTime': iso(node.last_boot_time or node.allocation_time),
        'allocationTime': iso(node.allocation_time),
        'ipAddress': node.ip_address,
        'ipv6Address': '',
        'affinityId': f'TVM:{node.id}',
        'vmSize': pool.spec['vmSize'].lower(),
        'totalTasksRun': node.total_tasks_run,
        'runningTasksCount': len(node.running),
        'runningTaskSlotsCount': node.running_slots,
        'totalTasksSucceeded': node.total_tasks_succeeded,
        'isDedicated': True,
        'nodeAgentInfo': {'version': '1.12.0-emulated', 'lastUpdateTime': iso(node.allocation_time)},
        'virtualMachineInfo': {'imageReference': pool.spec['virtualMachineConfiguration']['imageReference']},
        'endpointConfiguration': {'inboundEndpoints': []},
    }
    if node.recent_tasks:
        body['recentTasks'] = list(node.recent_tasks)
    if 'startTask' in pool.spec:
        body['startTask'] = pool.spec['startTask']
    if node.start_task_info:
        body['startTaskInfo'] = node.start_task_info
    if node.errors:
        body['errors'] = node.errors
    return body


def _job_resource(job: Job, base_url: str) -> dict:
    body = {
        'id': job.id,
        'url': f'{base_url}/jobs/{job.id}',
        'eTag': job.etag,
        'lastModified': iso(job.last_modified),
        'creationTime': iso(job.creation_time),
        'state': job.state,
        'stateTransitionTime': iso(job.state_transition_time),
        'priority': int(job.spec.get('priority') or 0),
        'maxParallelTasks': int(job.spec.get('maxParallelTasks', -1)),
        'allowTaskPreemption': bool(job.spec.get('allowTaskPreemption', False)),
        'usesTaskDependencies': bool(job.spec.get('usesTaskDependencies', False)),
        'constraints': job.spec.get('constraints') or {'maxWallClockTime': 'P10675199DT2H48M5.4775807S',
                                                       'maxTaskRetryCount': 0},
        'poolInfo': job.spec['poolInfo'],
        'onAllTasksComplete': job.spec.get('onAllTasksComplete', 'noaction'),
        'onTaskFailure': job.spec.get('onTaskFailure', 'noaction'),
        'executionInfo': {'startTime': iso(job.creation_time), 'poolId': job.pool_id, **job.execution_info},
    }
    if job.previous_state:
        body['previousState'] = job.previous_state
        body['previousStateTransitionTime'] = iso(job.previous_state_transition_time)
    for key in ('displayName', 'jobManagerTask', 'jobPreparationTask', 'jobReleaseTask',
                'commonEnvironmentSettings', 'metadata', 'networkConfiguration'):
        if key in job.spec:
            body[key] = job.spec[key]
    return body


def _task_resource(task: Task, base_url: str) -> dict:
    constraints = task.spec.get('constraints') or {}
    body = {
        'id': task.id,
        'url': f'{base_url}/jobs/{task.job_id}/tasks/{task.id}',
        'eTag': task.etag,
        'lastModified': iso(task.last_modified),
        'creationTime': iso(task.creation_time),
        'state': task.state,
        'stateTransitionTime': iso(task.state_transition_time),
        'commandLine': task.spec['commandLine'],
        'requiredSlots': task.required_slots,
        'userIdentity': task.spec.get('userIdentity') or {'autoUser': {'scope': 'pool',
                                                                        'elevationLevel': 'nonadmin'}},
        'constraints': {'maxWallClockTime': constraints.get('maxWallClockTime', 'P10675199DT2H48M5.4775807S'),
                        'retentionTime': constraints.get('retentionTime', 'P7D'),
                        'maxTaskRetryCount': int(constraints.get('maxTaskRetryCount', 0))},
        'executionInfo': task.execution_info,
    }
    if task.previous_state:
        body['previousState'] = task.previous_state
        body['previousStateTransitionTime'] = iso(task.previous_state_transition_time)
    if task.node_info:
        body['nodeInfo'] = task.node_info
    for key in ('displayName', 'resourceFiles', 'outputFiles', 'environmentSettings', 'affinityInfo',
                'exitConditions', 'containerSettings', 'multiInstanceSettings', 'dependsOn',
                'applicationPackageReferences'):
        if key in task.spec:
            body[key] = task.spec[key]
    return body


def page(items: Iterable[dict], *, filter_text: str | None, select: str | None, max_results: int | None,
         skip: int) -> tuple[list[dict], int | None]:
    """Filters, selects and pages REST items; returns the page and the next skip (or None)."""
    predicate = compile_filter(filter_text)
    limit = min(max_results or MAX_LIST_RESULTS, MAX_LIST_RESULTS)
    matched = [item for item in items if predicate is None or predicate(item)]
    chunk = matched[skip:skip + limit]
    next_skip = skip + limit if skip + limit < len(matched) else None
    return [apply_select(item, select) for item in chunk], next_skip


class BatchState:
    """The account: every pool, node, job and task, and every rule about them."""

    def __init__(self, account_name: str, base_url: str, nodes_dir: str) -> None:
        self.account_name = account_name
        self.base_url = base_url
        self.nodes_dir = nodes_dir
        self.pools: dict[str, Pool] = {}
        self.jobs: dict[str, Job] = {}
        self.hooks: SchedulerHooks = _NoHooks()  # type: ignore[assignment]
        self.journal = None  # persistence.Journal with --location: records every change
        self.pending_restart: deque[Pool] = deque()  # pools whose nodes reboot after a restart

    def changed(self, kind: str, entity: object) -> None:
        if self.journal is not None:
            self.journal.changed(kind, entity)

    def _removed(self, kind: str, entity: object) -> None:
        if self.journal is not None:
            self.journal.removed(kind, entity)

    def _set_job_state(self, job: Job, state: str) -> None:
        job.set_state(state)
        self.changed('job', job)

    def count_restored(self, job: Job, task: Task) -> None:
        self._count(job, task, None, task.state)

    # ----- pools -------------------------------------------------------------------------

    def create_pool(self, body: dict) -> Pool:
        pool_id = _check_id(body)
        if pool_id.lower() in self.pools:
            existing = self.pools[pool_id.lower()]
            raise BatchServiceError('PoolBeingDeleted' if existing.state == 'deleting' else 'PoolExists')
        if not body.get('vmSize'):
            raise missing_property('vmSize')
        if not images.is_supported_vm_size(body['vmSize']):
            raise invalid_property('vmSize', body['vmSize'],
                                   f"The VM size {body['vmSize']} is not supported by Azure Batch (retired or "
                                   'unknown); use a current size such as STANDARD_D2S_V3.')
        if 'cloudServiceConfiguration' in body:
            raise invalid_property('cloudServiceConfiguration', '...', 'CloudServiceConfiguration pools are '
                                                                      'retired; use virtualMachineConfiguration.')
        vm_config = body.get('virtualMachineConfiguration')
        if not vm_config:
            raise missing_property('virtualMachineConfiguration')
        if not vm_config.get('imageReference'):
            raise missing_property('virtualMachineConfiguration.imageReference')
        if not vm_config.get('nodeAgentSKUId'):
            raise missing_property('virtualMachineConfiguration.nodeAgentSKUId')
        image = images.find_image(vm_config['imageReference'], vm_config['nodeAgentSKUId'])
        if image is None:
            raise invalid_property('virtualMachineConfiguration.nodeAgentSKUId', vm_config['nodeAgentSKUId'],
                                   'The image and node agent SKU are not a supported combination '
                                   '(see GET /supportedimages).')
        if image['osType'] != 'linux':
            raise invalid_property('virtualMachineConfiguration.imageReference', image['imageReference']['sku'],
                                   'The local emulator runs Linux images only.')
        if body.get('enableAutoScale'):
            raise invalid_property('enableAutoScale', True, 'The local emulator does not evaluate autoscale '
                                                            'formulas; set targetDedicatedNodes.')
        for name in ('targetDedicatedNodes', 'targetLowPriorityNodes', 'taskSlotsPerNode'):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise invalid_property(name, value)
        if not 1 <= body.get('taskSlotsPerNode', 1) <= MAX_TASK_SLOTS:
            raise invalid_property('taskSlotsPerNode', body['taskSlotsPerNode'],
                                   f'The value must be between 1 and {MAX_TASK_SLOTS}.')
        _check_command_line(body.get('startTask'), 'startTask')
        etag, now = stamp()
        pool = Pool(id=pool_id, spec=dict(body), etag=etag, creation_time=now, last_modified=now)
        self.pools[pool_id.lower()] = pool
        # Tasks of jobs that already name this pool (it was deleted and created again) wait for it.
        for job in self.jobs.values():
            if job.pool_id.lower() == pool_id.lower() and job.state in ('active', 'disabled'):
                pool.pending.extend(task for task in job.tasks.values() if task.state == 'active')
        self.changed('pool', pool)
        self.hooks.pool_created(pool)
        return pool

    def get_pool(self, pool_id: str) -> Pool:
        pool = self.pools.get(pool_id.lower())
        if pool is None:
            raise BatchServiceError('PoolNotFound')
        return pool

    def pool_resource(self, pool: Pool) -> dict:
        return _pool_resource(pool, self.base_url)

    def list_pools(self) -> list[dict]:
        return [self.pool_resource(pool) for pool in self.pools.values()]

    def delete_pool(self, pool_id: str) -> None:
        pool = self.get_pool(pool_id)
        if pool.state != 'deleting':
            pool.state, pool.state_transition_time = 'deleting', utc_now()
            pool.allocation_state = 'resizing'
            pool.touch()
            self.changed('pool', pool)
            self.hooks.pool_deleted(pool)

    def forget_pool(self, pool: Pool) -> None:
        """Called by the scheduler once a deleting pool's nodes are gone."""
        if self.pools.get(pool.id.lower()) is pool:
            del self.pools[pool.id.lower()]
            self._removed('pool', pool)

    def update_pool(self, pool_id: str, body: dict, *, replace: bool) -> Pool:
        """PATCH (replace=False) changes the given properties; updateproperties replaces them."""
        pool = self._active_pool(pool_id)
        if 'startTask' in body:
            _check_command_line(body.get('startTask'), 'startTask')
        for key in ('startTask', 'metadata', 'applicationPackageReferences', 'targetNodeCommunicationMode'):
            if key in body:
                pool.spec[key] = body[key]
            elif replace and key in pool.spec and key != 'targetNodeCommunicationMode':
                del pool.spec[key]
        pool.touch()
        self.changed('pool', pool)
        return pool

    def resize_pool(self, pool_id: str, body: dict) -> Pool:
        pool = self._active_pool(pool_id)
        if pool.allocation_state != 'steady':
            raise BatchServiceError('PoolNotSteady')
        target = body.get('targetDedicatedNodes', pool.spec.get('targetDedicatedNodes', 0))
        if not isinstance(target, int) or target < 0:
            raise invalid_property('targetDedicatedNodes', target)
        pool.spec['targetDedicatedNodes'] = target
        pool.resize_errors = []
        pool.allocation_state, pool.allocation_state_transition_time = 'resizing', utc_now()
        pool.touch()
        self.changed('pool', pool)
        self.hooks.pool_created(pool)  # the scheduler brings the node count to the target
        return pool

    def stop_resize(self, pool_id: str) -> Pool:
        pool = self._active_pool(pool_id)
        pool.spec['targetDedicatedNodes'] = len(pool.nodes)
        pool.allocation_state, pool.allocation_state_transition_time = 'steady', utc_now()
        pool.touch()
        self.changed('pool', pool)
        return pool

    def _active_pool(self, pool_id: str) -> Pool:
        pool = self.get_pool(pool_id)
        if pool.state == 'deleting':
            raise BatchServiceError('PoolBeingDeleted')
        return pool

    # ----- nodes -------------------------------------------------------------------------

    def new_node(self, pool: Pool, root_dir_for: Callable[[str], str]) -> Node:
        node_id = f'tvmps_{secrets.token_hex(32)}_d'
        node = Node(id=node_id, pool_id=pool.id, root_dir=root_dir_for(node_id),
                    ip_address=f'10.0.0.{len(pool.nodes) + 4}')
        pool.nodes[node_id] = node
        self.changed('pool', pool)
        return node

    def get_node(self, pool_id: str, node_id: str) -> tuple[Pool, Node]:
        pool = self.get_pool(pool_id)
        node = pool.nodes.get(node_id)
        if node is None:
            raise BatchServiceError('NodeNotFound')
        return pool, node

    def node_resource(self, pool: Pool, node: Node) -> dict:
        return _node_resource(node, pool, self.base_url)

    def list_nodes(self, pool_id: str) -> list[dict]:
        pool = self.get_pool(pool_id)
        return [self.node_resource(pool, node) for node in pool.nodes.values()]

    def update_allocation_state(self, pool: Pool, reachable: int, errors: list[dict]) -> None:
        """A resize ended: steady once the pool has the nodes it can get; errors say why they are fewer."""
        if errors:
            pool.resize_errors = errors
        if pool.state != 'deleting' and len(pool.nodes) == reachable and pool.allocation_state != 'steady':
            pool.allocation_state, pool.allocation_state_transition_time = 'steady', utc_now()
            pool.touch()
            self.changed('pool', pool)

    # ----- jobs --------------------------------------------------------------------------

    def create_job(self, body: dict) -> Job:
        job_id = _check_id(body)
        if job_id.lower() in self.jobs:
            existing = self.jobs[job_id.lower()]
            raise BatchServiceError('JobBeingDeleted' if existing.state == 'deleting' else 'JobExists')
        pool_info = body.get('poolInfo')
        if not pool_info:
            raise missing_property('poolInfo')
        if pool_info.get('autoPoolSpecification'):
            raise invalid_property('poolInfo.autoPoolSpecification', '...',
                                   'The local emulator does not create auto pools; create the pool first.')
        if not pool_info.get('poolId'):
            raise missing_property('poolInfo.poolId')
        for key in ('jobManagerTask', 'jobPreparationTask', 'jobReleaseTask'):
            _check_command_line(body.get(key), key)
        if body.get('jobReleaseTask') and not body.get('jobPreparationTask'):
            raise invalid_property('jobReleaseTask', '...', 'A job release task requires a job preparation task.')
        if body.get('jobManagerTask'):
            raise invalid_property('jobManagerTask', '...', 'The local emulator does not run job manager tasks.')
        on_complete = str(body.get('onAllTasksComplete', 'noaction')).lower()
        if on_complete not in ('noaction', 'terminatejob'):
            raise invalid_property('onAllTasksComplete', body.get('onAllTasksComplete'))
        spec = dict(body)
        spec['onAllTasksComplete'] = on_complete
        etag, now = stamp()
        job = Job(id=job_id, spec=spec, pool_id=pool_info['poolId'], etag=etag, creation_time=now,
                  last_modified=now)
        self.jobs[job_id.lower()] = job
        self.changed('job', job)
        return job

    def get_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise BatchServiceError('JobNotFound')
        return job

    def job_resource(self, job: Job) -> dict:
        return _job_resource(job, self.base_url)

    def list_jobs(self) -> list[dict]:
        return [self.job_resource(job) for job in self.jobs.values()]

    def update_job(self, job_id: str, body: dict) -> Job:
        job = self._active_job(job_id)
        for key in ('priority', 'maxParallelTasks', 'constraints', 'metadata', 'onAllTasksComplete'):
            if key in body:
                job.spec[key] = str(body[key]).lower() if key == 'onAllTasksComplete' else body[key]
        job.etag, job.last_modified = stamp()
        self.changed('job', job)
        self.check_job_completion(job)
        return job

    def delete_job(self, job_id: str) -> None:
        job = self.get_job(job_id)
        if job.state == 'deleting':
            return
        self._set_job_state(job, 'deleting')
        for task in job.tasks.values():
            if task.state in ('running', 'preparing'):
                self.hooks.stop_task(task)
        self.hooks.job_ended(job)

    def forget_job(self, job: Job) -> None:
        if self.jobs.get(job.id.lower()) is job:
            del self.jobs[job.id.lower()]
            self._drop_pending(job)
            self._removed('job', job)

    def terminate_job(self, job_id: str, reason: str | None) -> None:
        job = self.get_job(job_id)
        if job.state == 'completed':
            raise BatchServiceError('JobCompleted')
        if job.state == 'deleting':
            raise BatchServiceError('JobBeingDeleted')
        if job.state == 'terminating':
            raise BatchServiceError('JobBeingTerminated')
        self._set_job_state(job, 'terminating')
        job.execution_info['terminateReason'] = reason or 'UserTerminate'
        self._end_job_tasks(job)

    def disable_job(self, job_id: str, disable_tasks: str | None) -> None:
        """No new task starts; running ones are requeued, terminated or left to finish (``wait``)."""
        job = self._active_job(job_id)
        mode = str(disable_tasks or '').lower()
        if mode not in ('requeue', 'terminate', 'wait'):
            raise invalid_property('disableTasks', disable_tasks, "Use 'requeue', 'terminate' or 'wait'.")
        if job.state != 'active':
            return
        self._set_job_state(job, 'disabled')
        for task in job.tasks.values():
            if task.state in ('running', 'preparing') and mode != 'wait':
                if mode == 'terminate':
                    task.terminate_requested = True
                    self.hooks.stop_task(task)
                else:
                    self.hooks.requeue_task(task)

    def enable_job(self, job_id: str) -> None:
        job = self._active_job(job_id)
        if job.state == 'disabled':
            self._set_job_state(job, 'active')
            self.hooks.work_available()

    def _active_job(self, job_id: str) -> Job:
        """A job that still accepts changes and tasks (not completed, terminating or being deleted)."""
        job = self.get_job(job_id)
        if job.state == 'deleting':
            raise BatchServiceError('JobBeingDeleted')
        if job.state in ('completed', 'terminating'):
            raise BatchServiceError('JobCompleted')
        return job

    def _end_job_tasks(self, job: Job) -> None:
        """Ends every unfinished task of a terminating job, then completes the job."""
        for task in list(job.tasks.values()):
            if task.state in ('running', 'preparing'):
                self.hooks.stop_task(task)
            elif task.state == 'active':
                self._complete(task, exit_code=None, failure=_task_ended_failure())
        self._drop_pending(job)
        if not any(task.state in ('running', 'preparing') for task in job.tasks.values()):
            self._finish_termination(job)

    def _finish_termination(self, job: Job) -> None:
        self._set_job_state(job, 'completed')
        job.execution_info['endTime'] = iso(utc_now())
        self.hooks.job_ended(job)

    def check_job_completion(self, job: Job) -> None:
        if job.state == 'terminating' and not any(t.state in ('running', 'preparing') for t in job.tasks.values()):
            self._finish_termination(job)
        elif (job.state == 'active' and job.spec.get('onAllTasksComplete') == 'terminatejob' and job.tasks
              and job.counts['completed'] == len(job.tasks)):
            self._set_job_state(job, 'terminating')
            job.execution_info['terminateReason'] = 'AllTasksComplete'
            self._finish_termination(job)

    def _drop_pending(self, job: Job) -> None:
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None:
            pool.pending = deque(task for task in pool.pending if task.job_id.lower() != job.id.lower())

    # ----- tasks -------------------------------------------------------------------------

    def _validated_task(self, job: Job, body: dict) -> Task:
        if not isinstance(body, dict):
            raise invalid_property('task', body)
        task_id = _check_id(body)
        _check_command_line(body, '')
        for index, output_file in enumerate(body.get('outputFiles') or []):
            container = (output_file.get('destination') or {}).get('container') or {}
            if not output_file.get('filePattern'):
                raise missing_property(f'outputFiles[{index}].filePattern')
            if not container.get('containerUrl'):
                raise missing_property(f'outputFiles[{index}].destination.container.containerUrl')
            if not (output_file.get('uploadOptions') or {}).get('uploadCondition'):
                raise missing_property(f'outputFiles[{index}].uploadOptions.uploadCondition')
        slots = body.get('requiredSlots', 1)
        pool = self.pools.get(job.pool_id.lower())
        most = pool.slots_per_node if pool else MAX_TASK_SLOTS
        if not isinstance(slots, int) or not 1 <= slots <= most:
            raise invalid_property('requiredSlots', slots, 'The value must be at least 1 and at most the '
                                                           "pool's taskSlotsPerNode.")
        if body.get('multiInstanceSettings'):
            raise invalid_property('multiInstanceSettings', '...', 'The local emulator runs no multi-instance '
                                                                   'tasks.')
        if body.get('dependsOn'):
            raise invalid_property('dependsOn', '...', 'The local emulator does not support task dependencies.')
        etag, now = stamp()
        return Task(id=task_id, job_id=job.id, spec=dict(body), etag=etag, creation_time=now,
                    last_modified=now)

    def add_task(self, job_id: str, body: dict) -> Task:
        job = self._active_job(job_id)
        task = self._validated_task(job, body)
        if task.id.lower() in job.tasks:
            raise BatchServiceError('TaskExists')
        self._enqueue_new(job, [task])
        return task

    def add_task_collection(self, job_id: str, bodies: list,
                            parse: Callable[[dict], dict] = lambda body: body) -> list[dict]:
        """Adds up to 100 tasks (each parsed by ``parse``); returns the per-task results (success or clienterror)."""
        job = self._active_job(job_id)
        if not isinstance(bodies, list) or not bodies:
            raise missing_property('value')
        if len(bodies) > MAX_TASKS_PER_COLLECTION:
            raise invalid_property('value', len(bodies), 'The number of tasks in the collection exceeds the '
                                                         f'maximum of {MAX_TASKS_PER_COLLECTION}.')
        results, added = [], []
        for body in bodies:
            try:
                task = self._validated_task(job, parse(body))
                if task.id.lower() in job.tasks or any(t.id.lower() == task.id.lower() for t in added):
                    raise BatchServiceError('TaskExists')
            except BatchServiceError as error:
                task_id = body.get('id') if isinstance(body, dict) else None
                results.append({'status': 'clienterror', 'taskId': task_id or '',
                                'error': error.body(self.base_url)})
                continue
            added.append(task)
            results.append({'status': 'success', 'taskId': task.id, 'eTag': task.etag,
                            'lastModified': iso(task.last_modified),
                            'location': f'{self.base_url}/jobs/{job.id}/tasks/{task.id}'})
        self._enqueue_new(job, added)
        return results

    def _enqueue_new(self, job: Job, tasks: list[Task]) -> None:
        for task in tasks:
            job.tasks[task.id.lower()] = task
            self.changed('task', task)
            job.counts['active'] += 1
            job.slot_counts['active'] += task.required_slots
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None and tasks:
            pool.pending.extend(tasks)
            self.hooks.work_available()

    def get_task(self, job_id: str, task_id: str) -> tuple[Job, Task]:
        job = self.get_job(job_id)
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise BatchServiceError('TaskNotFound')
        return job, task

    def task_resource(self, task: Task) -> dict:
        return _task_resource(task, self.base_url)

    def list_tasks(self, job_id: str) -> list[dict]:
        job = self.get_job(job_id)
        return [self.task_resource(task) for task in job.tasks.values()]

    def task_counts(self, job_id: str) -> dict:
        job = self.get_job(job_id)
        return {'taskCounts': dict(job.counts), 'taskSlotCounts': dict(job.slot_counts)}

    def delete_task(self, job_id: str, task_id: str) -> Task:
        job, task = self.get_task(job_id, task_id)
        if task.state in ('running', 'preparing'):
            self.hooks.stop_task(task)
        self._count(job, task, task.state, None)
        del job.tasks[task.id.lower()]
        self._removed('task', task)
        pool = self.pools.get(job.pool_id.lower())
        if pool is not None and task.state == 'active':
            pool.pending = deque(t for t in pool.pending if t is not task)
        task.state = 'deleted'
        self.check_job_completion(job)
        return task

    def terminate_task(self, job_id: str, task_id: str) -> None:
        job, task = self.get_task(job_id, task_id)
        if task.state == 'completed':
            return
        if task.state in ('running', 'preparing'):
            task.terminate_requested = True
            self.hooks.stop_task(task)
        else:
            pool = self.pools.get(job.pool_id.lower())
            if pool is not None:
                pool.pending = deque(t for t in pool.pending if t is not task)
            self._complete(task, exit_code=None, failure=_task_ended_failure())

    def reactivate_task(self, job_id: str, task_id: str) -> None:
        job, task = self.get_task(job_id, task_id)
        if task.state != 'completed' or task.execution_info.get('result') != 'failure':
            raise BatchServiceError('OperationInvalidForCurrentState',
                                    'Only a completed task that failed can be reactivated.')
        self._requeue(task, count_as='retryCount', reset=True)

    # ----- what the scheduler reports --------------------------------------------------------

    def _count(self, job: Job, task: Task, old: str | None, new: str | None) -> None:
        buckets = {'active': 'active', 'preparing': 'running', 'running': 'running', 'completed': 'completed'}
        for state, delta in ((old, -1), (new, 1)):
            bucket = buckets.get(state or '')
            if bucket:
                job.counts[bucket] += delta
                job.slot_counts[bucket] += delta * task.required_slots
        if new == 'completed' or old == 'completed':
            outcome = 'failed' if task.execution_info.get('result') == 'failure' else 'succeeded'
            delta = 1 if new == 'completed' else -1
            job.counts[outcome] += delta
            job.slot_counts[outcome] += delta * task.required_slots

    def set_task_state(self, task: Task, state: str) -> None:
        job = self.jobs.get(task.job_id.lower())
        if job is None or job.tasks.get(task.id.lower()) is not task or task.state == state:
            return
        # Completed-outcome counts must see the old result, so count before changing it.
        self._count(job, task, task.state, None)
        task.previous_state, task.previous_state_transition_time = task.state, task.state_transition_time
        task.state, task.state_transition_time = state, utc_now()
        task.etag, task.last_modified = stamp()
        self._count(job, task, None, state)
        self.changed('task', task)

    def task_started(self, task: Task, pool: Pool, node: Node, state: str = 'running') -> None:
        task.node = node
        task.node_info = {
            'affinityId': f'TVM:{node.id}', 'nodeUrl': f'{self.base_url}/pools/{pool.id}/nodes/{node.id}',
            'poolId': pool.id, 'nodeId': node.id,
            'taskRootDirectory': f'workitems/{task.job_id}/job-1/{task.id}',
            'taskRootDirectoryUrl': f'{self.base_url}/pools/{pool.id}/nodes/{node.id}/files/workitems/'
                                    f'{task.job_id}/job-1/{task.id}'}
        self.set_task_state(task, state)

    def task_running(self, task: Task) -> None:
        task.execution_info['startTime'] = iso(utc_now())
        if task.execution_info.get('retryCount'):
            task.execution_info['lastRetryTime'] = task.execution_info['startTime']
        self.set_task_state(task, 'running')

    def task_finished(self, task: Task, exit_code: int | None, failure: dict | None) -> None:
        """A run ended: retry it while retries remain, else complete it."""
        if task.state not in ('running', 'preparing'):
            return
        max_retries = int((task.spec.get('constraints') or {}).get('maxTaskRetryCount', 0))
        job = self.jobs.get(task.job_id.lower())
        terminated, task.terminate_requested = task.terminate_requested, False
        ended = terminated or job is None or job.state in ('terminating', 'deleting')
        if failure and not ended and (max_retries == -1 or task.execution_info['retryCount'] < max_retries):
            task.execution_info['exitCode'] = exit_code
            self._requeue(task, count_as='retryCount')
            return
        if ended:
            failure = _task_ended_failure()  # killed because the task or its job was ended
        self._complete(task, exit_code, failure)

    def task_requeued(self, task: Task) -> None:
        """The node running the task was lost: the service puts the task back in the queue."""
        if task.state in ('running', 'preparing'):
            self._requeue(task, count_as='requeueCount')

    def _requeue(self, task: Task, *, count_as: str, reset: bool = False) -> None:
        task.node = None
        self.set_task_state(task, 'active')  # counts first: they read the previous result
        if reset:
            task.execution_info = {'retryCount': 0, 'requeueCount': 0}
            task.not_before = 0.0
        else:
            info = task.execution_info
            info[count_as] = info.get(count_as, 0) + 1
            if count_as == 'requeueCount':
                info['lastRequeueTime'] = iso(utc_now())
            for key in ('result', 'failureInfo', 'endTime'):
                info.pop(key, None)
            if count_as == 'retryCount':
                task.not_before = time.monotonic() + retry_delay(info['retryCount'])
        job = self.jobs.get(task.job_id.lower())
        pool = self.pools.get(job.pool_id.lower()) if job else None
        if pool is not None:
            pool.pending.appendleft(task)
            self.hooks.work_available()

    def _complete(self, task: Task, exit_code: int | None, failure: dict | None) -> None:
        info = task.execution_info
        info['endTime'] = iso(utc_now())
        info.setdefault('startTime', info['endTime'])
        if exit_code is not None:
            info['exitCode'] = exit_code
        info['result'] = 'failure' if failure else 'success'
        if failure:
            info['failureInfo'] = failure
        else:
            info.pop('failureInfo', None)
        self.set_task_state(task, 'completed')
        job = self.jobs.get(task.job_id.lower())
        if job is not None:
            self.check_job_completion(job)


def _task_ended_failure() -> dict:
    return {'category': 'usererror', 'code': 'TaskEnded', 'message': 'Task Was Ended by User Request'}


def failure_exit_code() -> dict:
    return {'category': 'usererror', 'code': 'FailureExitCode',
            'message': 'The task exited with an exit code representing a failure'}
