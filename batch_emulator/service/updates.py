"""Updates from the spec: what a PATCH merges, what a PUT replaces, and the rules the descriptions state.

Every update operation of the spec has a body schema; the properties a client may write are that
schema's properties that are not ``readOnly`` (a PUT sends the whole entity, ``BatchJob``, whose id,
state and tasks are the service's). A PATCH (``*UpdateOptions``) replaces each property it carries,
as the descriptions say ("If this element is present, it replaces/overwrites any existing ..."), and
keeps the others; a PUT or ``updateproperties`` (``*ReplaceOptions``) replaces the whole set: what it
leaves out is removed, so that GET writes the default again. Nothing is picked by hand, so a property
the spec adds is updated too.

The rules are the sentences of the properties' descriptions (``RULES``: a phrase, and what it stands
for), found in the spec when the table is built; the rooms (``pools``, ``jobs``) apply them, and the
result must still pass the create rules of the entity. A property sent with the value it already has
is not a change: the service accepted a PATCH carrying a job's own ``poolInfo`` while the job was
active, although the description says the call "will fail if you include the poolInfo element"
(recorded [J:job/patch]), so a rule about changes refuses only a different value.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re

from batch_emulator.common.errors import BatchServiceError, invalid_property
from batch_emulator.contract.schema import operations, resolve

# (entity, replace?) -> the spec's operation
OPERATIONS = {
    ('pool', False): 'Pools_UpdatePool',
    ('pool', True): 'Pools_ReplacePoolProperties',
    ('job', False): 'Jobs_UpdateJob',
    ('job', True): 'Jobs_ReplaceJob',
    ('schedule', False): 'JobSchedules_UpdateJobSchedule',
    ('schedule', True): 'JobSchedules_ReplaceJobSchedule',
    ('task', True): 'Tasks_ReplaceTask',
}

# A phrase of a property's description (a regular expression, case-insensitive) -> the rule it states.
RULES = (
    (r'can be updated only when the pool is empty', 'pool-empty'),
    (r'change the Pool for a Job only when the Job is disabled', 'job-disabled'),
    (r'only the keepAlive property of the autoPoolSpecification can be updated', 'auto-pool-keep-alive'),
    (r'may not change the value from terminatejob to noaction', 'terminatejob-stays'),
    (r'range from -1000 to 1000', 'priority-range'),
    (r'must be -1 or greater than 0', 'minus-one-or-positive'),
    (r'maximum of 10 Application Package references', 'at-most-10'),
)


@dataclasses.dataclass(frozen=True)
class Update:
    operation_id: str
    replace: bool
    properties: tuple[str, ...]  # what the body may write, in the spec's order
    rules: tuple[tuple[str, str], ...]  # (property, rule) for every rule a description states


@functools.cache
def update(kind: str, replace: bool) -> Update:
    """The plan of the entity's PATCH (``replace=False``) or PUT: its properties, from the operation's body
    schema, and the rules the descriptions of the entity's update operations state (the PATCH schema's
    descriptions say more than the PUT's, and the service applies them to both)."""
    schema = _body_schema(OPERATIONS[(kind, replace)])
    properties = tuple(name for name, prop in schema['properties'].items() if not prop.get('readOnly'))
    descriptions: dict[str, list[str]] = {}
    for (other_kind, _), operation_id in OPERATIONS.items():
        if other_kind == kind:
            for name, prop in _body_schema(operation_id)['properties'].items():
                descriptions.setdefault(name, []).append(prop.get('description', ''))
    rules = tuple((name, rule) for name in properties for phrase, rule in RULES
                  if any(re.search(phrase, text, re.IGNORECASE) for text in descriptions.get(name, ())))
    return Update(OPERATIONS[(kind, replace)], replace, properties, rules)


def _body_schema(operation_id: str) -> dict:
    operation = next(op for op in operations() if op.operation_id == operation_id)
    return resolve(operation.body_schema)


def merged(spec: dict, body: dict, plan: Update) -> dict:
    """The entity's new properties: what the body carries replaces, what it leaves out stays (PATCH) or
    goes (PUT); nothing of ``spec`` is changed."""
    new = copy.deepcopy(spec)
    for name in plan.properties:
        if name in body:
            new[name] = copy.deepcopy(body[name])
        elif plan.replace:
            new.pop(name, None)
    return new


def _normal(value: object, name: str = '') -> object:
    """A value as compared for a change: ``vmSize`` in any case (the service lower-cases it, recorded)."""
    return value.lower() if name == 'vmSize' and isinstance(value, str) else value


@dataclasses.dataclass(frozen=True)
class Context:
    """What the rules look at besides the values: the pool's node count, the job's state."""
    nodes: int = 0
    job_state: str | None = None


def check(plan: Update, old: dict, new: dict, context: Context) -> None:
    """Applies every rule of the plan to the change from ``old`` to ``new`` (may complete ``new``, see
    ``_auto_pool_keep_alive``); raises the service's error for the first one broken."""
    for name, rule in plan.rules:
        _CHECKS[rule](name, old.get(name), new, context)


def _pool_empty(name: str, before: object, new: dict, context: Context) -> None:
    if context.nodes and _normal(before, name) != _normal(new.get(name), name):
        nodes = f'{context.nodes} node' + ('s' if context.nodes != 1 else '')
        raise BatchServiceError('OperationInvalidForCurrentState', values={
            'PropertyName': name, 'Reason': f'{name} can be updated only when the pool is empty; it has {nodes}.'})


def _pool_id(pool_info: object) -> str | None:
    pool_id = (pool_info or {}).get('poolId') if isinstance(pool_info, dict) else None
    return pool_id.lower() if isinstance(pool_id, str) else None


def _job_disabled(name: str, before: object, new: dict, context: Context) -> None:
    after = new.get(name)
    if _pool_id(after) is not None and _pool_id(after) != _pool_id(before) and context.job_state != 'disabled':
        raise BatchServiceError('OperationInvalidForCurrentState', values={
            'PropertyName': name, 'Reason': 'The pool of a job can be changed only while the job is disabled.'})


def _auto_pool_keep_alive(name: str, before: object, new: dict, context: Context) -> None:
    """An autoPoolSpecification sent in an update may change keepAlive only, and only of a job's own auto pool
    (lifetime job); the rest of it is the job's as it was. Otherwise 409 (the REST documentation of job update)."""
    sent = (new.get(name) or {}).get('autoPoolSpecification')
    if sent is None:
        return
    current = (before or {}).get('autoPoolSpecification') if isinstance(before, dict) else None
    others = {key: value for key, value in sent.items() if key != 'keepAlive'}
    if (current is None or str(current.get('poolLifetimeOption', '')).lower() != 'job'
            or any(not _same(current.get(key), value, key) for key, value in others.items())):
        raise BatchServiceError('OperationInvalidForCurrentState', values={
            'PropertyName': 'autoPoolSpecification',
            'Reason': "Only keepAlive of a job's auto pool specification can be updated, and only when its "
                      "poolLifetimeOption is 'job'."})
    new[name] = {**new[name], 'autoPoolSpecification': {**current, **({'keepAlive': sent['keepAlive']}
                                                                      if 'keepAlive' in sent else {})}}


def _same(current: object, sent: object, name: str) -> bool:
    """A resent part of an auto pool specification is the same when every property both have is: a client
    may send back what GET showed, with the defaults the service wrote (the pool's resizeTimeout, ...)."""
    if isinstance(current, dict) and isinstance(sent, dict):
        return all(_same(current[key], sent[key], key) for key in current.keys() & sent.keys())
    return _normal(current, name) == _normal(sent, name)


def _terminatejob_stays(name: str, before: object, new: dict, context: Context) -> None:
    after = new.get(name) or 'noaction'  # left out of a PUT: noaction
    if before == 'terminatejob' and after == 'noaction':
        raise invalid_property(name, after, 'Once automatic job termination is engaged (terminatejob), it cannot be '
                                            'turned off (noaction).')


def _priority_range(name: str, before: object, new: dict, context: Context) -> None:
    after = new.get(name)
    if after is not None and not -1000 <= after <= 1000:
        raise BatchServiceError('OutOfRangePriority')


def _minus_one_or_positive(name: str, before: object, new: dict, context: Context) -> None:
    after = new.get(name)
    if after is not None and (after == 0 or after < -1):
        raise invalid_property(name, after, 'The value must be -1 or greater than 0.')


def _at_most_10(name: str, before: object, new: dict, context: Context) -> None:
    after = new.get(name)
    if after is not None and len(after) > 10:
        raise invalid_property(name, f'{len(after)} references', 'There is a maximum of 10 Application Package '
                                                                 'references on any given Pool.')


_CHECKS = {
    'pool-empty': _pool_empty,
    'job-disabled': _job_disabled,
    'auto-pool-keep-alive': _auto_pool_keep_alive,
    'terminatejob-stays': _terminatejob_stays,
    'priority-range': _priority_range,
    'minus-one-or-positive': _minus_one_or_positive,
    'at-most-10': _at_most_10,
}
