"""Keeping the account in a location folder (``--location DIR``), like Azurite does.

Every change to a pool, job, task, job schedule or certificate is appended to ``DIR/state.jsonl`` as a record of the
entity (or of its removal). The file is flushed before a changing request is answered, so an
acknowledged create survives the emulator being killed, and at least every quarter second for
the scheduler's own changes. On start-up the records are replayed, the file is rewritten as a
compact snapshot, and what a restart interrupts is dealt with as the service would after an
outage: running tasks go back to the queue (not counted: requeueCount counts the requeues a user
asked for) and every node reboots,
running its start task again.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from typing import Any

import orjson

from batch_emulator.common.loops import survive
from batch_emulator.runtime.processes import stop_survivors
from batch_emulator.service.certificates import certificate_from_record, certificate_record
from batch_emulator.service.job_schedule import schedule_from_record, schedule_record
from batch_emulator.service.jobs import AUTO_POOL
from batch_emulator.service.state import BatchState, Job, Node, Pool, Task, iso, parse_iso
from batch_emulator.service.state_checks import Invalid, about_line, check_node_folder, check_record

STATE_FILE = 'state.jsonl'


def pool_record(pool: Pool) -> dict:
    return {'id': pool.id, 'spec': pool.spec, 'etag': pool.etag, 'creationTime': iso(pool.creation_time),
            'lastModified': iso(pool.last_modified), 'state': pool.state,
            'stateTransitionTime': iso(pool.state_transition_time), 'allocationState': pool.allocation_state,
            'resizeErrors': pool.resize_errors,
            'nodes': [{'id': node.id, 'rootDir': node.root_dir, 'ipAddress': node.ip_address,
                       'allocationTime': iso(node.allocation_time), 'startTaskInfo': node.start_task_info,
                       'totalTasksRun': node.total_tasks_run, 'totalTasksSucceeded': node.total_tasks_succeeded,
                       'preparedJobs': node.prepared_jobs, 'dedicated': node.dedicated}
                      for node in pool.nodes.values()]}


def job_record(job: Job) -> dict:
    return {'id': job.id, 'spec': job.spec, 'poolId': job.pool_id, 'etag': job.etag,
            'creationTime': iso(job.creation_time), 'lastModified': iso(job.last_modified), 'state': job.state,
            'stateTransitionTime': iso(job.state_transition_time), 'previousState': job.previous_state,
            'previousStateTransitionTime': iso(job.previous_state_transition_time),
            'executionInfo': job.execution_info}


def task_record(task: Task) -> dict:
    return {'id': task.id, 'jobId': task.job_id, 'spec': task.spec, 'etag': task.etag,
            'creationTime': iso(task.creation_time), 'lastModified': iso(task.last_modified), 'state': task.state,
            'stateTransitionTime': iso(task.state_transition_time), 'previousState': task.previous_state,
            'previousStateTransitionTime': iso(task.previous_state_transition_time),
            'executionInfo': task.execution_info, 'nodeInfo': task.node_info,
            'nodeId': task.node.id if task.node else None, 'processId': task.process_id,
            'processStartTime': task.process_start_time}


def _key(kind: str, entity: Any) -> tuple:
    if kind == 'task':
        return ('task', entity.job_id.lower(), entity.id.lower())
    if kind == 'certificate':
        return ('certificate', entity.thumbprint_algorithm, entity.thumbprint)
    return (kind, entity.id.lower())


def _record_key(kind: str, record: dict) -> tuple:
    """The key of a record read back: as ``_key`` gives it (without the kind)."""
    if kind == 'task':
        return (record['jobId'].lower(), record['id'].lower())
    if kind == 'certificate':
        return (record['thumbprintAlgorithm'], record['thumbprint'])
    return (record['id'].lower(),)


_RECORDS = {'pool': pool_record, 'job': job_record, 'task': task_record, 'schedule': schedule_record,
            'certificate': certificate_record}


# A record is written by orjson (0.3 µs a new task's record against 3.9 with the standard library's encoder);
# what orjson does not write (a lone surrogate, which any JSON string may escape; an integer beyond 64 bits in a
# property the spec does not have, kept as sent) by the standard library's, which the loader reads back the same.
# Non-ASCII characters are UTF-8 in the one and escaped in the other: the loader reads both. (NaN and Infinity,
# which the json module parses, orjson writes as null: they can only be in such unknown properties, which no
# answer shows; every number property of the spec is the service's own.)
_ENCODER = json.JSONEncoder(separators=(',', ':'), check_circular=False)
# orjson writes datetimes and dataclasses itself; passed through, they reach the standard library's encoder,
# which refuses them as it did before: a record holds only JSON's own types.
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _line(event: dict) -> bytes:
    try:
        return orjson.dumps(event, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return (_ENCODER.encode(event) + '\n').encode('ascii')  # ensure_ascii: every other character escaped


def _upsert(kind: str, entity: Any) -> bytes:
    return _line({kind: _RECORDS[kind](entity)})


def private_file(path: str, flags: int) -> int:
    """An ``open`` opener: files of the location folder are readable by their owner only (0600)."""
    return os.open(path, flags, 0o600)


class Journal:
    """Collects changed entities in order and appends their records to the state file.

    The records keep what a restart needs in clear: environment values, resource and
    output file URLs with their SAS signatures, mount keys and CIFS passwords, registry
    and user passwords, extensions' protectedSettings (the README lists them). The file
    is therefore 0600; a new location folder is 0700.
    """

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, STATE_FILE)
        if os.path.exists(self.path):
            os.chmod(self.path, 0o600)  # a location folder made by an older emulator
        self._events: dict[tuple, tuple[str, Any]] = {}
        self._file = None
        self._flush_due = False

    def changed(self, kind: str, entity: Any) -> None:
        key = _key(kind, entity)
        self._events.pop(key, None)  # the latest change of an entity goes last
        self._events[key] = ('upsert', entity)

    def removed(self, kind: str, entity: Any) -> None:
        key = _key(kind, entity)
        self._events.pop(key, None)
        self._events[key] = ('remove', entity)

    def flush_soon(self) -> None:
        """Flushes once the event loop's current round of callbacks has run: tasks started together are written
        together (a task's process id and start time, say, reach the file before anything else is awaited)."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_when_due)

    def _flush_when_due(self) -> None:
        self._flush_due = False
        survive('flushing the journal', self.flush, None)

    def flush(self) -> None:
        if not self._events:
            return
        if self._file is None:
            self._file = open(self.path, 'ab', opener=private_file)  # noqa: SIM115 - see close()
        lines = [_line({'remove': key[0], 'key': list(key[1:])}) if action == 'remove' else _upsert(key[0], entity)
                 for key, (action, entity) in self._events.items()]
        self._events.clear()
        self._file.write(b''.join(lines))
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def load(self) -> tuple[dict, dict, dict, dict, dict]:
        """Replays the state file: (pools, jobs, tasks, job schedules, certificates) records by key, in creation
        order.

        Every line is checked first (``state_checks``); one that fails stops the start with a StateFileError
        naming it. Only the last line may be cut short (a crash while writing it): it is left out.
        ``self.lines`` gives the line each kept record came from.
        """
        pools: dict[tuple, dict] = {}
        jobs: dict[tuple, dict] = {}
        tasks: dict[tuple, dict] = {}
        schedules: dict[tuple, dict] = {}
        certificates: dict[tuple, dict] = {}
        self.lines: dict[tuple, int] = {}
        if not os.path.exists(self.path):
            return pools, jobs, tasks, schedules, certificates
        by_kind = {'pool': pools, 'job': jobs, 'task': tasks, 'schedule': schedules, 'certificate': certificates}
        with open(self.path, encoding='utf-8', errors='replace') as file:
            text = file.read()
        lines = text.split('\n')
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            with about_line(self.path, number):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    if number == len(lines):
                        continue  # the last line, cut short by a crash
                    raise Invalid('not a JSON line') from None
                kind, record = check_record(event)
            if kind == 'remove':
                key = tuple(part.lower() for part in event['key'])
                by_kind[event['remove']].pop(key, None)
                if event['remove'] == 'job':
                    for task_key in [k for k in tasks if k[0] == key[0]]:
                        del tasks[task_key]
                continue
            key = _record_key(kind, record)
            by_kind[kind][key] = record
            self.lines[(kind, *key)] = number
        return pools, jobs, tasks, schedules, certificates

    def rewrite(self, state: BatchState) -> None:
        """Replaces the file by a compact snapshot of the current state (which the changes noted so far are in)."""
        self._events.clear()
        temporary = self.path + '.tmp'
        with open(temporary, 'wb', opener=private_file) as file:
            for pool in state.pools.values():
                file.write(_upsert('pool', pool))
            for job in state.jobs.values():
                file.write(_upsert('job', job))
                for task in job.tasks.values():
                    file.write(_upsert('task', task))
            for schedule in state.job_schedules.values():
                file.write(_upsert('schedule', schedule))
            for certificate in state.certificates.values():
                file.write(_upsert('certificate', certificate))
        os.replace(temporary, self.path)


def _ended_auto_pools(jobs: dict, schedules: dict, reading: _Reading) -> set[str]:
    """Auto pools (lower-cased ids) whose lifetime the restart ends: those of jobs that were being deleted or
    terminated (they come back gone or completed) and of schedules that were being deleted, unless kept alive."""
    ended = set()
    for kind, records, ending, link_of in (
            ('job', jobs, ('deleting', 'terminating'), lambda record: record['executionInfo'].get(AUTO_POOL)),
            ('schedule', schedules, ('deleting',), lambda record: record.get('autoPool'))):
        for record in records.values():
            link = link_of(reading.at(kind, record)) if record['state'] in ending else None
            if link and not link.get('keepAlive'):
                ended.add(link['poolId'].lower())
    return ended


class _Reading:
    """Which record restore() is at: whatever goes wrong with it is a StateFileError naming its line."""

    def __init__(self, journal: Journal) -> None:
        self.journal, self.line = journal, None

    def at(self, kind: str, record: dict) -> dict:
        self.line = self.journal.lines.get((kind, *_record_key(kind, record)))
        return record


def restore(state: BatchState, journal: Journal) -> None:
    """Rebuilds the account from the journal, as the service would come back from an outage.

    Raises StateFileError (naming the line) when the file holds what the emulator never writes.
    """
    pools, jobs, tasks, schedules, certificates = journal.load()
    reading = _Reading(journal)
    try:
        _restore(state, journal, reading, pools, jobs, tasks, schedules)
        for record in certificates.values():
            certificate = certificate_from_record(reading.at('certificate', record))
            state.certificates[(certificate.thumbprint_algorithm, certificate.thumbprint)] = certificate
        reading.line = None
        # A deletion the restart interrupted finishes now, against the pools that came back (deletefailed if one
        # still names the certificate), as a pool or job being deleted is gone after a restart.
        state.settle_certificates()
        journal.rewrite(state)
    except (Invalid, KeyError, TypeError, ValueError, AttributeError) as error:
        with about_line(journal.path, reading.line):
            raise error from None


def _restore(state: BatchState, journal: Journal, reading: _Reading, pools: dict, jobs: dict, tasks: dict,
             schedules: dict) -> None:
    for record in pools.values():  # node folders inside this location, before anything acts on them
        for saved in reading.at('pool', record)['nodes']:
            saved['rootDir'] = check_node_folder(saved, record['id'], state.nodes_dir)
    # Nothing the earlier emulator started may run on: a task must never run twice at once.
    stop_survivors(state.nodes_dir, [(record['processId'], record.get('processStartTime'))
                                     for record in tasks.values() if record.get('processId')])
    nodes_by_id: dict[str, Node] = {}
    ended = _ended_auto_pools(jobs, schedules, reading)
    for record in pools.values():
        if reading.at('pool', record)['state'] == 'deleting' or record['id'].lower() in ended:
            continue  # its deletion finishes now
        pool = Pool(id=record['id'], spec=record['spec'], etag=record['etag'],
                    creation_time=parse_iso(record['creationTime']), last_modified=parse_iso(record['lastModified']),
                    state=record['state'], state_transition_time=parse_iso(record['stateTransitionTime']),
                    allocation_state='resizing', resize_errors=record['resizeErrors'])
        for saved in record['nodes']:
            node = Node(id=saved['id'], pool_id=pool.id, root_dir=saved['rootDir'], ip_address=saved['ipAddress'],
                        state='rebooting', allocation_time=parse_iso(saved['allocationTime']),
                        start_task_info=saved['startTaskInfo'], total_tasks_run=saved['totalTasksRun'],
                        total_tasks_succeeded=saved['totalTasksSucceeded'], prepared_jobs=saved['preparedJobs'],
                        dedicated=saved.get('dedicated', True))
            pool.nodes[node.id] = node
            nodes_by_id[node.id] = node
        state.pools[pool.id.lower()] = pool
    for record in jobs.values():
        if reading.at('job', record)['state'] == 'deleting':
            continue
        job = Job(id=record['id'], spec=record['spec'], pool_id=record['poolId'], etag=record['etag'],
                  creation_time=parse_iso(record['creationTime']), last_modified=parse_iso(record['lastModified']),
                  state='completed' if record['state'] == 'terminating' else record['state'],
                  state_transition_time=parse_iso(record['stateTransitionTime']),
                  previous_state=record['previousState'],
                  previous_state_transition_time=parse_iso(record['previousStateTransitionTime']),
                  execution_info=record['executionInfo'])
        state.jobs[job.id.lower()] = job
    for record in tasks.values():
        job = state.jobs.get(reading.at('task', record)['jobId'].lower())
        if job is None:
            continue
        task = Task(id=record['id'], job_id=job.id, spec=record['spec'], etag=record['etag'],
                    creation_time=parse_iso(record['creationTime']), last_modified=parse_iso(record['lastModified']),
                    state=record['state'], state_transition_time=parse_iso(record['stateTransitionTime']),
                    previous_state=record['previousState'],
                    previous_state_transition_time=parse_iso(record['previousStateTransitionTime']),
                    execution_info=record['executionInfo'], node_info=record['nodeInfo'],
                    node=nodes_by_id.get(record['nodeId'] or ''))
        if task.state in ('running', 'preparing'):
            # Interrupted by the restart: back to the queue, as after a node failure (not counted in requeueCount,
            # which counts the requeues a user asked for).
            task.state = 'active'
            task.node = None
            info = task.execution_info
            for key in ('startTime', 'result', 'failureInfo', 'endTime'):
                info.pop(key, None)
        job.tasks[task.id.lower()] = task
        state.count_restored(job, task)
        pool = state.pools.get(job.pool_id.lower())
        if task.state == 'active' and pool is not None and job.state in ('active', 'disabled'):
            pool.pending.append(task)
    for record in schedules.values():
        if reading.at('schedule', record)['state'] != 'deleting':  # its deletion finishes now, as its jobs' do
            schedule = schedule_from_record(record)
            state.job_schedules[schedule.id.lower()] = schedule
    state.pending_restart = deque(state.pools.values())
