"""Pools and their nodes: create, resize and delete pools; the nodes the scheduler brings up."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from batch_emulator.common.errors import BatchServiceError, invalid_property, missing_property
from batch_emulator.service import images, updates
from batch_emulator.service.models import MAX_TASK_SLOTS, Node, Pool, iso, stamp, utc_now
from batch_emulator.service.room import Room, _check_command_line, _check_id

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.scaling import AutoScaleRoom

NO_CONTAINER_RUNTIME = ('No container runtime answers on this machine: install Docker Engine or Podman (the emulator '
                        'runs container tasks with it), or leave containerConfiguration out.')
_IMAGE_ID = re.compile(r'/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/'
                       r'(images/[^/]+|galleries/[^/]+/images/[^/]+(/versions/[^/]+)?)', re.IGNORECASE)
_IMAGE_ID_FORMS = ('The specified resource id must be of the format /subscriptions/{subscriptionId}/resourceGroups/'
                   '{resourceGroupName}/providers/Microsoft.Compute/images/{imageName}, /subscriptions/'
                   '{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries/'
                   '{galleryName}/images/{galleryImageName}/versions/{galleryImageVersionName}, or /subscriptions/'
                   '{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries/'
                   '{galleryName}/images/{galleryImageName}')


_SCALING = ('targetDedicatedNodes', 'targetLowPriorityNodes', 'enableAutoScale', 'autoScaleFormula',
            'autoScaleEvaluationInterval')


def _pool_resource(pool: Pool, base_url: str) -> dict:
    """The pool's state and what was sent; ``contract.render`` adds the defaults the service writes."""
    body = {
        **pool.spec,
        'id': pool.id,
        'url': f'{base_url}/pools/{pool.id}',
        'eTag': pool.etag,
        'lastModified': iso(pool.last_modified),
        'creationTime': iso(pool.creation_time),
        'state': pool.state,
        'stateTransitionTime': iso(pool.state_transition_time),
        'allocationState': pool.allocation_state,
        'allocationStateTransitionTime': iso(pool.allocation_state_transition_time),
        'currentDedicatedNodes': pool.count_nodes(dedicated=True),
        'currentLowPriorityNodes': pool.count_nodes(dedicated=False),
        'targetDedicatedNodes': int(pool.spec.get('targetDedicatedNodes') or 0),
        'targetLowPriorityNodes': int(pool.spec.get('targetLowPriorityNodes') or 0),
        'resizeErrors': pool.resize_errors or None,
        'autoScaleRun': pool.autoscale_run,
    }
    return {**body, **without_secrets(pool.spec)}


def without_secrets(spec: dict) -> dict:
    """The properties of a pool's spec that hold secrets, without them: the service never gives them back.

    User passwords and mount keys (recorded, section 2.1); VM extensions' protectedSettings, which Azure
    treats as write-only (the extension gets them, no GET shows them). Only the properties that change.
    """
    changed: dict = {}
    if 'userAccounts' in spec:
        changed['userAccounts'] = [{k: v for k, v in account.items() if k != 'password'}
                                   for account in spec['userAccounts']]
    if 'mountConfiguration' in spec:
        changed['mountConfiguration'] = [_without_mount_secrets(mount) for mount in spec['mountConfiguration']]
    vm_config = spec.get('virtualMachineConfiguration') or {}
    if vm_config.get('extensions'):
        changed['virtualMachineConfiguration'] = {
            **vm_config, 'extensions': [extension_without_secrets(extension) for extension in vm_config['extensions']]}
    return changed | registry_passwords_hidden(spec | changed)


def registry_passwords_hidden(spec: dict) -> dict:
    """The properties of a spec that hold a container registry's password (a pool's containerRegistries, a
    task's or start task's containerSettings.registry), without it: a password is write-only, as the user
    accounts' are. Only the properties that change."""
    changed = {}
    for name, value in spec.items():
        hidden = _without_registry_passwords(value)
        if hidden is not value:
            changed[name] = hidden
    return changed


def _without_registry_passwords(value: object) -> object:
    """``value`` with no ``password`` beside a ``registryServer`` at any depth; the same object if it has none."""
    if isinstance(value, dict):
        items = {key: _without_registry_passwords(item) for key, item in value.items()
                 if not (key == 'password' and 'registryServer' in value)}
        same = len(items) == len(value) and all(items[key] is value[key] for key in items)
        return value if same else items
    if isinstance(value, list):
        items = [_without_registry_passwords(item) for item in value]
        return value if all(new is old for new, old in zip(items, value, strict=True)) else items
    return value


def pool_info_without_secrets(pool_info: dict | None) -> dict:
    """A job's (or a job specification's) ``poolInfo`` whose auto pool's specification keeps no secret."""
    auto_pool = (pool_info or {}).get('autoPoolSpecification')
    if not auto_pool or not isinstance(auto_pool.get('pool'), dict):
        return {}
    pool = {**auto_pool['pool'], **without_secrets(auto_pool['pool'])}
    return {'poolInfo': {**pool_info, 'autoPoolSpecification': {**auto_pool, 'pool': pool}}}


def extension_without_secrets(extension: dict) -> dict:
    return {k: v for k, v in extension.items() if k != 'protectedSettings'}


def _without_mount_secrets(mount: dict) -> dict:
    secrets = {'accountKey', 'sasKey', 'password'}
    return {kind: {k: v for k, v in settings.items() if k not in secrets} if isinstance(settings, dict) else settings
            for kind, settings in mount.items()}


def _node_resource(node: Node, pool: Pool, base_url: str) -> dict:
    body = {
        'id': node.id,
        'url': f'{base_url}/pools/{pool.id}/nodes/{node.id}',
        'state': node.state,
        'schedulingState': node.scheduling_state,
        'stateTransitionTime': iso(node.state_transition_time),
        'lastBootTime': iso(node.last_boot_time),  # from its first boot on (recorded: absent while creating)
        'allocationTime': iso(node.allocation_time),
        'ipAddress': node.ip_address,
        'affinityId': f'TVM:{node.id}',
        'vmSize': pool.spec['vmSize'],
        'totalTasksRun': node.total_tasks_run,
        'runningTasksCount': len(node.running),
        'runningTaskSlotsCount': node.running_slots,
        'totalTasksSucceeded': node.total_tasks_succeeded,
        'isDedicated': node.dedicated,
        'virtualMachineInfo': {'imageReference': {**pool.spec['virtualMachineConfiguration']['imageReference'],
                                                  'exactVersion': 'latest'}},
    }
    if node.last_boot_time:  # the agent reports from the node's first boot on (recorded: at idle)
        body['nodeAgentInfo'] = {'version': '1.12.0-emulated', 'lastUpdateTime': iso(node.last_boot_time)}
    if node.recent_tasks:
        body['recentTasks'] = list(node.recent_tasks)
    if 'startTask' in pool.spec:
        body['startTask'] = pool.spec['startTask']
    if node.start_task_info:
        body['startTaskInfo'] = node.start_task_info
    if node.errors:
        body['errors'] = node.errors
    return body


class PoolRoom(Room):
    """Pools and nodes: every rule about them."""

    def connect(self, *, autoscale_room: AutoScaleRoom) -> None:
        """The room pools call: autoscale (a pool created or updated with a formula)."""
        self.autoscale_room = autoscale_room

    # ----- pools -------------------------------------------------------------------------

    def create_pool(self, body: dict) -> Pool:
        pool_id = _check_id(body)
        if pool_id.lower() in self.pools:
            existing = self.pools[pool_id.lower()]
            raise BatchServiceError('PoolBeingDeleted' if existing.state == 'deleting' else 'PoolExists')
        self.check_pool_body(body)
        return self._add_pool(pool_id, body)

    def check_pool_body(self, body: dict) -> None:
        """Every check of a pool's body but its id's (no side effects: auto pool specifications use it too)."""
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
        image_id = vm_config['imageReference'].get('virtualMachineImageId')
        if image_id is not None and not _IMAGE_ID.fullmatch(image_id):
            raise invalid_property('virtualMachineImageId', image_id, _IMAGE_ID_FORMS)  # recorded [P:create_pools]
        if (vm_config.get('diskEncryptionConfiguration') or {}).get('customerManagedKey') and not body.get('identity'):
            raise BatchServiceError('InvalidPropertyValue', values={  # recorded [J:pool2/cmk]
                'PropertyName': 'identity', 'PropertyValue': None,
                'Reason': 'Pool Identity is required when using CustomerManagedKey.'})
        image = images.find_image(vm_config['imageReference'], vm_config['nodeAgentSKUId'])
        if image is None:
            raise invalid_property('virtualMachineConfiguration.nodeAgentSKUId', vm_config['nodeAgentSKUId'],
                                   'The image and node agent SKU are not a supported combination '
                                   '(see GET /supportedimages).')
        if vm_config.get('containerConfiguration') and self.container_runtime is None:
            raise invalid_property('containerConfiguration', '...', NO_CONTAINER_RUNTIME)
        if image['osType'] != 'linux':
            raise invalid_property('virtualMachineConfiguration.imageReference', image['imageReference']['sku'],
                                   'The local emulator runs Linux images only.')
        self.autoscale_room.check_autoscale_on_create(body)
        for name in ('targetDedicatedNodes', 'targetLowPriorityNodes', 'taskSlotsPerNode'):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise invalid_property(name, value)
        if not 1 <= body.get('taskSlotsPerNode', 1) <= MAX_TASK_SLOTS:
            raise invalid_property('taskSlotsPerNode', body['taskSlotsPerNode'],
                                   f'The value must be between 1 and {MAX_TASK_SLOTS}.')
        _check_command_line(body.get('startTask'), 'startTask')

    def _add_pool(self, pool_id: str, body: dict) -> Pool:
        etag, now = stamp()
        pool = Pool(id=pool_id, spec=dict(body), etag=etag, creation_time=now, last_modified=now,
                    state_transition_time=now, allocation_state_transition_time=now)
        # The first autoscale run is evaluated before the pool is stored: a create is all or nothing.
        first_run = self.autoscale_room.evaluate_pool_formula(pool) if body.get('enableAutoScale') else None
        self.pools[pool_id.lower()] = pool
        # Tasks of jobs that already name this pool (it was deleted and created again) wait for it.
        for job in self.jobs.values():
            if job.pool_id.lower() == pool_id.lower() and job.state in ('active', 'disabled'):
                pool.pending.extend(task for task in job.tasks.values() if task.state == 'active')
        if first_run is not None:
            self.autoscale_room.start_autoscale(pool, first_run, created=True)
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
            pool.touch()  # recorded: a new ETag; stateTransitionTime = the new lastModified
            pool.state, pool.state_transition_time = 'deleting', pool.last_modified
            pool.allocation_state, pool.allocation_state_transition_time = 'resizing', pool.last_modified
            self.changed('pool', pool)
            self.hooks.pool_deleted(pool)

    def forget_pool(self, pool: Pool) -> None:
        """Called by the scheduler once a deleting pool's nodes are gone."""
        if self.pools.get(pool.id.lower()) is pool:
            del self.pools[pool.id.lower()]
            self._removed('pool', pool)

    def update_pool(self, pool_id: str, body: dict, *, replace: bool) -> Pool:
        """PATCH (replace=False) changes every property of BatchPoolUpdateOptions it carries; updateproperties
        replaces those of BatchPoolReplaceOptions (``updates``). The result passes the create rules."""
        pool = self.active_pool(pool_id)
        plan = updates.update('pool', replace)
        spec = updates.merged(pool.spec, body, plan)
        updates.check(plan, pool.spec, spec, updates.Context(nodes=len(pool.nodes)))
        # The pool as it would be created (its targets and autoscale are not the update's to check).
        self.check_pool_body({key: value for key, value in spec.items() if key not in _SCALING})
        pool.spec = spec
        pool.touch()
        self.changed('pool', pool)
        return pool

    def resize_pool(self, pool_id: str, body: dict) -> Pool:
        pool = self.active_pool(pool_id)
        if pool.allocation_state != 'steady':
            raise BatchServiceError('PoolNotSteady')
        # The targets are whole numbers, not negative: the wire checked the body (wire/checks, the service's order).
        pool.spec['targetDedicatedNodes'] = body.get('targetDedicatedNodes', pool.spec.get('targetDedicatedNodes', 0))
        if body.get('targetLowPriorityNodes') is not None:
            pool.spec['targetLowPriorityNodes'] = body['targetLowPriorityNodes']
        pool.resize_errors = []
        pool.touch()  # recorded: a new ETag; allocationStateTransitionTime = the new lastModified
        pool.allocation_state, pool.allocation_state_transition_time = 'resizing', pool.last_modified
        self.changed('pool', pool)
        self.hooks.pool_created(pool)  # the scheduler brings the node count to the target
        return pool

    def stop_resize(self, pool_id: str) -> Pool:
        """Recorded [P:scale_pools]: 'stopping' at once, the same ETag (the pool itself is not changed), the
        targets kept; steady when the resize under way ends, with ResizeStopped if it fell short."""
        pool = self.active_pool(pool_id)
        if pool.allocation_state == 'resizing':
            pool.allocation_state, pool.allocation_state_transition_time = 'stopping', utc_now()
            self.changed('pool', pool)
        return pool

    def active_pool(self, pool_id: str) -> Pool:
        pool = self.get_pool(pool_id)
        if pool.state == 'deleting':
            raise BatchServiceError('PoolBeingDeleted')
        return pool

    # ----- nodes -------------------------------------------------------------------------

    def new_node(self, pool: Pool, root_dir_for: Callable[[str], str], *, dedicated: bool = True) -> Node:
        # The service's node ids end in _d for a dedicated node and _p for a Spot/low-priority one.
        node_id = f'tvmps_{secrets.token_hex(32)}_{"d" if dedicated else "p"}'
        node = Node(id=node_id, pool_id=pool.id, root_dir=root_dir_for(node_id),
                    ip_address=f'10.0.0.{len(pool.nodes) + 4}', dedicated=dedicated)
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
        stopped = pool.allocation_state == 'stopping'
        if pool.state != 'deleting' and (len(pool.nodes) == reachable or stopped) and pool.allocation_state != 'steady':
            for dedicated, name, kind in ((True, 'targetDedicatedNodes', 'dedicated'),
                                          (False, 'targetLowPriorityNodes', 'low priority')):  # recorded wording
                if stopped and pool.count_nodes(dedicated=dedicated) != int(pool.spec.get(name) or 0):
                    pool.resize_errors = [*pool.resize_errors, {
                        'code': 'ResizeStopped',
                        'message': f'Desired number of {kind} nodes could not be allocated due to a stop resize '
                                   'operation'}]
            # Recorded: allocation-state changes touch neither the ETag nor lastModified.
            pool.allocation_state, pool.allocation_state_transition_time = 'steady', utc_now()
            self.changed('pool', pool)
