"""The one place that says how a node's folder is laid out, as on a real Linux node:

    <root>/shared/                                   AZ_BATCH_NODE_SHARED_DIR
    <root>/startup/{wd,stdout.txt,stderr.txt}        the pool's start task (AZ_BATCH_NODE_STARTUP_DIR)
    <root>/workitems/<job>/job-1/<task>/{wd,stdout.txt,stderr.txt}
    <root>/workitems/<job>/job-1/jobpreparation/     and jobrelease/

``task_folder`` is the path relative to the node's root, as the service writes it in a task's
``nodeInfo.taskRootDirectory`` and as the node's file URLs name it (``.../files/workitems/...``); the
``*_dir`` functions are the same paths on this machine.
"""

from __future__ import annotations

import os

SHARED = 'shared'
STARTUP = 'startup'
WORKITEMS = 'workitems'
NODE_FOLDERS = (SHARED, STARTUP, WORKITEMS)  # made when a node boots
WORKING_DIRECTORY = 'wd'
JOB_PREPARATION = 'jobpreparation'
JOB_RELEASE = 'jobrelease'


def task_folder(job_id: str, task_id: str) -> str:
    """A task's folder relative to the node's root (``task_id`` may be jobpreparation or jobrelease)."""
    return f'{WORKITEMS}/{job_id}/job-1/{task_id}'


def task_dir(root_dir: str, job_id: str, task_id: str) -> str:
    return os.path.join(root_dir, WORKITEMS, job_id, 'job-1', task_id)


def startup_dir(root_dir: str) -> str:
    return os.path.join(root_dir, STARTUP)


def shared_dir(root_dir: str) -> str:
    return os.path.join(root_dir, SHARED)


def working_dir(folder: str) -> str:
    """The working directory of a task (or of the start task) whose folder is ``folder``."""
    return os.path.join(folder, WORKING_DIRECTORY)
