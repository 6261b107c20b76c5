"""Keeping the account in a location folder (``--location DIR``), like Azurite does.

Every change to a pool, job or task is appended to ``DIR/state.jsonl`` as a record of the
entity (or of its removal). The file is flushed before a changing request is answered, so an
acknowledged create survives the emulator being killed, and at least every quarter second for
the scheduler's own changes. On start-up the records are replayed, the file is rewritten as a
compact snapshot, and what a restart interrupts is dealt with as the service would after an
outage: running tasks go back to the queue (their requeue count grows) and every node reboots,
running its start task again.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import deque
from typing import Any

from .jobs import AUTO_POOL
from .processes import stop_survivors
from .schedules import schedule_from_record, schedule_record
from .state import BatchState, Job, Node, Pool, Task, iso, parse_iso

STATE_FILE = 'state.jsonl'


def pool_record(pool: Pool) -> dict:
    return {'id': pool.id, 'spec': pool.spec, 'etag': pool.etag, 'creationTime': iso(pool.creation_time),
            'lastModified': iso(pool.last_modified), 'state': pool.state,
            'stateTransitionTime': iso(pool.state_transition_time), 'allocationState': pool.allocation_state,
            'resizeErrors': pool.resize_errors,
            'nodes': [{'id': node.id, 'rootDir': node.root_dir, 'ipAddress': node.ip_address,
                       'allocationTime': iso(node.allocation_time), 'startTaskInfo': node.start_task_info,
                       'totalTasksRun': node.total_tasks_run, 'totalTasksSucceeded': node.total_tasks_succeeded,
                       'preparedJobs': node.prepared_jobs} for node in pool.nodes.values()]}


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
    return (kind, entity.id.lower())


_RECORDS = {'pool': pool_record, 'job': job_record, 'task': task_record, 'schedule': schedule_record}


def _line(event: dict) -> str:
    return json.dumps(event, separators=(',', ':')) + '\n'


def _upsert(kind: str, entity: Any) -> str:
    return _line({kind: _RECORDS[kind](entity)})


def private_file(path: str, flags: int) -> int:
    """An ``open`` opener: files of the location folder are readable by their owner only (0600)."""
    return os.open(path, flags, 0o600)


class Journal:
    """Collects changed entities in order and appends their records to the state file.

    The records keep the tasks' resource and output file URLs with their SAS
    signatures, in clear: a restart needs them to run requeued tasks. The file is
    therefore 0600 in a 0700 folder.
    """

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, STATE_FILE)
        if os.path.exists(self.path):
            os.chmod(self.path, 0o600)  # a location folder made by an older emulator
        self._events: dict[tuple, tuple[str, Any]] = {}
        self._file = None

    def changed(self, kind: str, entity: Any) -> None:
        key = _key(kind, entity)
        self._events.pop(key, None)  # the latest change of an entity goes last
        self._events[key] = ('upsert', entity)

    def removed(self, kind: str, entity: Any) -> None:
        key = _key(kind, entity)
        self._events.pop(key, None)
        self._events[key] = ('remove', entity)

    def flush(self) -> None:
        if not self._events:
            return
        if self._file is None:
            self._file = open(self.path, 'a', encoding='utf-8', opener=private_file)  # noqa: SIM115 - see close()
        lines = [_line({'remove': key[0], 'key': list(key[1:])}) if action == 'remove' else _upsert(key[0], entity)
                 for key, (action, entity) in self._events.items()]
        self._events.clear()
        self._file.write(''.join(lines))
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def load(self) -> tuple[dict, dict, dict, dict]:
        """Replays the state file: (pools, jobs, tasks, job schedules) records by key, in creation order."""
        pools: dict[tuple, dict] = {}
        jobs: dict[tuple, dict] = {}
        tasks: dict[tuple, dict] = {}
        schedules: dict[tuple, dict] = {}
        if not os.path.exists(self.path):
            return pools, jobs, tasks, schedules
        with open(self.path, encoding='utf-8') as file:
            for line in file:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if 'remove' in event:
                    key = tuple(event['key'])
                    {'pool': pools, 'job': jobs, 'task': tasks, 'schedule': schedules}[event['remove']].pop(key, None)
                    if event['remove'] == 'job':
                        for task_key in [k for k in tasks if k[0] == key[0]]:
                            del tasks[task_key]
                elif 'pool' in event:
                    pools[(event['pool']['id'].lower(),)] = event['pool']
                elif 'job' in event:
                    jobs[(event['job']['id'].lower(),)] = event['job']
                elif 'task' in event:
                    record = event['task']
                    tasks[(record['jobId'].lower(), record['id'].lower())] = record
                elif 'schedule' in event:
                    schedules[(event['schedule']['id'].lower(),)] = event['schedule']
        return pools, jobs, tasks, schedules

    def rewrite(self, state: BatchState) -> None:
        """Replaces the file by a compact snapshot of the current state."""
        temporary = self.path + '.tmp'
        with open(temporary, 'w', encoding='utf-8', opener=private_file) as file:
            for pool in state.pools.values():
                file.write(_upsert('pool', pool))
            for job in state.jobs.values():
                file.write(_upsert('job', job))
                for task in job.tasks.values():
                    file.write(_upsert('task', task))
            for schedule in state.job_schedules.values():
                file.write(_upsert('schedule', schedule))
        os.replace(temporary, self.path)


def _ended_auto_pools(jobs: dict, schedules: dict) -> set[str]:
    """Auto pools (lower-cased ids) whose lifetime the restart ends: those of jobs that were being deleted or
    terminated (they come back gone or completed) and of schedules that were being deleted, unless kept alive."""
    links = [record['executionInfo'].get(AUTO_POOL) for record in jobs.values()
             if record['state'] in ('deleting', 'terminating')]
    links += [record.get('autoPool') for record in schedules.values() if record['state'] == 'deleting']
    return {link['poolId'].lower() for link in links if link and not link.get('keepAlive')}


def restore(state: BatchState, journal: Journal) -> None:
    """Rebuilds the account from the journal, as the service would come back from an outage."""
    pools, jobs, tasks, schedules = journal.load()
    # Nothing the earlier emulator started may run on: a task must never run twice at once.
    stop_survivors(state.nodes_dir, [(record['processId'], record.get('processStartTime'))
                                     for record in tasks.values() if record.get('processId')])
    nodes_by_id: dict[str, Node] = {}
    ended = _ended_auto_pools(jobs, schedules)
    for record in pools.values():
        if record['state'] == 'deleting' or record['id'].lower() in ended:
            continue  # its deletion finishes now
        pool = Pool(id=record['id'], spec=record['spec'], etag=record['etag'],
                    creation_time=parse_iso(record['creationTime']), last_modified=parse_iso(record['lastModified']),
                    state=record['state'], state_transition_time=parse_iso(record['stateTransitionTime']),
                    allocation_state='resizing', resize_errors=record['resizeErrors'])
        for saved in record['nodes']:
            node = Node(id=saved['id'], pool_id=pool.id, root_dir=saved['rootDir'], ip_address=saved['ipAddress'],
                        state='rebooting', allocation_time=parse_iso(saved['allocationTime']),
                        start_task_info=saved['startTaskInfo'], total_tasks_run=saved['totalTasksRun'],
                        total_tasks_succeeded=saved['totalTasksSucceeded'], prepared_jobs=saved['preparedJobs'])
            pool.nodes[node.id] = node
            nodes_by_id[node.id] = node
        state.pools[pool.id.lower()] = pool
    for record in jobs.values():
        if record['state'] == 'deleting':
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
        job = state.jobs.get(record['jobId'].lower())
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
            # Interrupted by the restart: back to the queue, as after a node failure.
            task.state = 'active'
            task.node = None
            info = task.execution_info
            info['requeueCount'] = info.get('requeueCount', 0) + 1
            info['lastRequeueTime'] = iso(datetime.datetime.now(datetime.timezone.utc))
            for key in ('startTime', 'result', 'failureInfo', 'endTime'):
                info.pop(key, None)
        job.tasks[task.id.lower()] = task
        state.count_restored(job, task)
        pool = state.pools.get(job.pool_id.lower())
        if task.state == 'active' and pool is not None and job.state in ('active', 'disabled'):
            pool.pending.append(task)
    for record in schedules.values():
        if record['state'] != 'deleting':  # its deletion finishes now, as its jobs' do
            schedule = schedule_from_record(record)
            state.job_schedules[schedule.id.lower()] = schedule
    journal.rewrite(state)
    state.pending_restart = deque(state.pools.values())
