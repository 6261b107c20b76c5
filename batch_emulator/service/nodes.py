"""Compute nodes: scheduling on and off, node users, remote login, extensions, and the checks that
come before the scheduler reboots, reimages, deallocates, starts or removes a node.

The scheduler does the work that involves processes (``scheduler.py``); this room holds the rules
the service applies first, and the node's own data. States as recorded (section 4, "Node states"):
disablescheduling/enablescheduling answer 200; reboot, reimage, deallocate and start 202; a
deallocating node has schedulingState disabled and keeps its stateTransitionTime when deallocated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.service.models import Node, Pool
from batch_emulator.service.pools import extension_without_secrets
from batch_emulator.service.room import Room

if TYPE_CHECKING:  # the rooms this one is connected to (state.BatchState connects them)
    from batch_emulator.service.pools import PoolRoom

_BUSY = {'creating': 'NodeBeingCreated', 'starting': 'NodeBeingStarted', 'waitingforstarttask': 'NodeBeingStarted',
         'rebooting': 'NodeBeingRebooted', 'reimaging': 'NodeBeingReimaged'}
_REMOTE_LOGIN_BASE_PORT = 50000  # the service's NAT pools for SSH start at 50000 as well
_NODE_EXTENSION = {'name': 'batchNodeExtension', 'publisher': 'Microsoft.Azure.Extensions', 'type': 'CustomScript',
                   'typeHandlerVersion': '2.0', 'autoUpgradeMinorVersion': True}  # recorded [P:ext]


def _options(body: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(body.get(name) or default).lower()
    if value not in allowed:
        raise invalid_property(name, body.get(name))
    return value


_DONE = {'reboot': 'rebooted', 'reimage': 'reimaged', 'deallocate': 'deallocated'}


class NodeRoom(Room):
    """Compute nodes: every rule about them that is not a pool's."""

    def connect(self, *, pool_room: PoolRoom) -> None:
        """The room nodes call: pools (a node's pool)."""
        self.pool_room = pool_room

    def node_for_action(self, pool_id: str, node_id: str, action: str) -> tuple[Pool, Node]:
        """A node that may be rebooted, reimaged or deallocated now (the service's 409s otherwise)."""
        pool, node = self.pool_room.get_node(pool_id, node_id)
        if node.state in _BUSY:
            raise BatchServiceError(_BUSY[node.state])
        if node.state in ('deallocated', 'deallocating') and action != 'start':
            raise BatchServiceError('OperationInvalidForCurrentState', f'A deallocated node cannot be {_DONE[action]}.')
        if action == 'start' and node.state != 'deallocated':
            raise BatchServiceError('OperationInvalidForCurrentState', 'Only a deallocated node can be started.')
        return pool, node

    @staticmethod
    def requeue_option(body: dict, name: str) -> str:
        return _options(body, name, ('requeue', 'terminate', 'taskcompletion', 'retaineddata'), 'requeue')

    def disable_scheduling(self, pool_id: str, node_id: str, body: dict) -> tuple[Node, str]:
        """No new task starts on the node; running ones are requeued, terminated or finish (the option)."""
        _, node = self.pool_room.get_node(pool_id, node_id)
        option = _options(body, 'nodeDisableSchedulingOption', ('requeue', 'terminate', 'taskcompletion'),
                          'requeue')
        node.scheduling_state = 'disabled'
        self.changed('pool', self.pools[pool_id.lower()])
        return node, option

    def enable_scheduling(self, pool_id: str, node_id: str) -> Node:
        pool, node = self.pool_room.get_node(pool_id, node_id)
        node.scheduling_state = 'enabled'
        self.changed('pool', pool)
        self.hooks.work_available()
        return node

    # ----- node users (the service creates an OS account; the emulator keeps the record) ---------

    def create_node_user(self, pool_id: str, node_id: str, body: dict) -> str:
        pool, node = self.pool_room.get_node(pool_id, node_id)
        name = body['name']
        if name.lower() in {user.lower() for user in node.users}:
            raise BatchServiceError('NodeUserExists')
        node.users[name] = {key: body[key] for key in ('isAdmin', 'expiryTime', 'sshPublicKey') if key in body}
        self.changed('pool', pool)
        return name

    def replace_node_user(self, pool_id: str, node_id: str, user_name: str, body: dict) -> None:
        pool, node = self.pool_room.get_node(pool_id, node_id)
        name = self._user(node, user_name)
        node.users[name] = {**{k: v for k, v in node.users[name].items() if k == 'isAdmin'},
                            **{key: body[key] for key in ('expiryTime', 'sshPublicKey') if key in body}}
        self.changed('pool', pool)

    def delete_node_user(self, pool_id: str, node_id: str, user_name: str) -> None:
        pool, node = self.pool_room.get_node(pool_id, node_id)
        del node.users[self._user(node, user_name)]
        self.changed('pool', pool)

    @staticmethod
    def _user(node: Node, user_name: str) -> str:
        for name in node.users:
            if name.lower() == user_name.lower():
                return name
        raise BatchServiceError('NodeUserNotFound')

    def remote_login_settings(self, pool_id: str, node_id: str) -> dict:
        """Where to SSH to: the local machine (the emulator runs no sshd of its own; the node is this machine)."""
        pool, node = self.pool_room.get_node(pool_id, node_id)
        port = _REMOTE_LOGIN_BASE_PORT + list(pool.nodes).index(node.id)
        settings = {'remoteLoginIPAddress': '127.0.0.1', 'remoteLoginPort': port}
        public = (pool.spec.get('networkConfiguration') or {}).get('publicIPAddressConfiguration') or {}
        if any(str(family).lower() == 'ipv6' for family in public.get('ipFamilies') or []):
            # A pool with IPv6 public addresses: an IPv6 address beside, on the same port [N:GetRemoteLoginSettings]
            settings.update(ipv6RemoteLoginIPAddress='::1', ipv6RemoteLoginPort=port)
        return settings

    def node_extensions(self, pool_id: str, node_id: str) -> list[dict]:
        """The pool's VM extensions and the service's own, as a node reports them (recorded [P:ext])."""
        pool, node = self.pool_room.get_node(pool_id, node_id)
        extensions = list(pool.spec['virtualMachineConfiguration'].get('extensions') or []) + [_NODE_EXTENSION]
        state = 'Succeeded' if node.state in ('idle', 'running') else 'Creating'
        return [{'provisioningState': state, 'instanceView': {'name': extension['name']},
                 'vmExtension': {'enableAutomaticUpgrade': False, **extension_without_secrets(extension)}}
                for extension in extensions]

    def node_extension(self, pool_id: str, node_id: str, name: str) -> dict:
        for extension in self.node_extensions(pool_id, node_id):
            if extension['vmExtension']['name'].lower() == name.lower():
                return extension
        raise BatchServiceError('ExtensionNotFound', status=404,
                                message='The specified extension does not exist on the node.')

    def nodes_to_remove(self, pool_id: str, body: dict) -> tuple[Pool, list[Node], str]:
        """removenodes: the nodes named (each must be in the pool), and what happens to their tasks."""
        pool = self.pool_room.active_pool(pool_id)
        if pool.allocation_state != 'steady':
            raise BatchServiceError('PoolNotSteady')
        names = body['nodeList']
        if not 1 <= len(names) <= 100:
            raise invalid_property('nodeList', len(names), 'Between 1 and 100 nodes can be removed at once.')
        nodes = []
        for name in names:
            node = pool.nodes.get(name)
            if node is None:
                raise BatchServiceError('NodeNotFound', values={'NodeId': name})
            nodes.append(node)
        option = self.requeue_option(body, 'nodeDeallocationOption')
        for dedicated, name in ((True, 'targetDedicatedNodes'), (False, 'targetLowPriorityNodes')):
            removed = sum(node.dedicated is dedicated for node in nodes)
            if removed:  # each node leaves its own kind's target
                pool.spec[name] = max(0, int(pool.spec.get(name) or 0) - removed)
        pool.touch()  # recorded: a new ETag; resizing at once, current count unchanged
        pool.allocation_state, pool.allocation_state_transition_time = 'resizing', pool.last_modified
        self.changed('pool', pool)
        return pool, nodes, option
