"""Derives replayable exchanges from Microsoft's SDK recordings of the Batch service (run while developing).

    python tools/derive_exchanges.py --assets DIR [--only NAME ...]

DIR holds files of Azure/azure-sdk-assets at their repository paths (a sparse checkout of the tags
named in SOURCES, or copies of single files; whole or with polling and headers trimmed: only
RequestUri, RequestMethod, RequestBody, StatusCode, ResponseHeaders and ResponseBody are read). The
data committed now was derived from copies of the files at the commits in SOURCES, read through a
code search service and saved trimmed (request headers dropped, long polling runs cut to their first
and last request, the parts of four .NET files before the test's own requests taken to be the pool
set-up every .NET test starts with, and Go's TestJob.json read only up to its job list); from the
whole files the script gives these entries and, for TestJob.json, the requests after the list too.
The 19 recordings added later (.NET AutoScale, BatchNodeUser, Scheduling, GetRemoteLoginSettings,
GetTaskFile, DeleteTaskFile, GetNodeFile; Java canReadFromTaskFile, canReadFromNode, testJobUser,
testCreateTasks; Go TestNode/Reboot, TestNode/Reimage, TestNodeDeallocate, TestApplications,
TestCertificates, TestJob/Schedule, TestListSupportedImages) were saved the same way, and in them the
values this script never compares were written as placeholders (times, ETags, request ids, long
node ids) and long lists it compares only at the top level were shortened; .NET's pool set-up was
read from GetTaskFile, DeleteTaskFile and BatchNodeUser and taken to be the same in GetNodeFile.
CI has no access to the recordings: it replays only what this script writes into
tests/data/recorded_exchanges.json, the recordings named ``N:``, ``Java:`` and ``Go:`` (the
``P:``/``J:`` recordings there were derived by hand earlier and are left as they are).

Nothing of a recording is copied: ids become ours (``net-pool-1``), request bodies keep their
property set with our values (names, command lines, display names, metadata and Windows images
replaced; enumerations, numbers, sizes and flags are the facts under test), and the expectations
are the status, error code and error value keys, the key sets, the values the service filled in,
and which headers the answer carries. Runs of one GET polling for a state collapse to one request
that waits for the state the recording reached (and a reactivate that succeeded waits for its task to
be completed, as it was then). What the emulator cannot replay is marked with
the reason; so is every entry UNREPLAYABLE names (applied to the recordings derived earlier too, so
``--only`` re-derives a few recordings and keeps the others' entries and reasons).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, unquote, urlsplit

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_FILE = os.path.join(PROJECT_DIR, 'tests', 'data', 'recorded_exchanges.json')

NET = 'net/sdk/batch/Azure.Compute.Batch/tests/SessionRecords/'
JAVA = 'java/sdk/batch/azure-compute-batch/src/test/resources/session-records/'
GO = 'go/sdk/batch/azbatch/testdata/recordings/'
# (recording name, language, file(s) in Azure/azure-sdk-assets, commit read). Go records a subtest in a file of
# its own while the parent test's calls around it go to the parent's file: ``file[a:b]`` takes a slice of entries
# so that a recording replays in the order the calls were made.
SOURCES = [
    ('N:PoolExists', 'dotnet', [NET + 'BatchPoolIntegrationTests/PoolExists.json'], '03f2554'),
    ('N:PatchPool', 'dotnet', [NET + 'BatchPoolIntegrationTests/PatchPool.json'], '03f2554'),
    ('N:TaskUpdate', 'dotnet', [NET + 'BatchTaskIntegrationTests/TaskUpdate.json'], '03f2554'),
    ('N:ReplacePool', 'dotnet', [NET + 'BatchPoolIntegrationTests/ReplacePool.json'], '03f2554'),
    ('N:JobSchedulePatch', 'dotnet', [NET + 'BatchJobScheduleIntegrationTests/JobSchedulePatch.json'], '03f2554'),
    ('N:PatchJob', 'dotnet', [NET + 'BatchJobIntegrationTests/PatchJob.json'], '03f2554'),
    ('N:TerminateJob', 'dotnet', [NET + 'BatchJobIntegrationTests/TerminateJob.json'], '03f2554'),
    ('N:TaskReactive', 'dotnet', [NET + 'BatchTaskIntegrationTests/TaskReactive.json'], '03f2554'),
    ('Java:testResizeErrorCases', 'java', [JAVA + 'BatchErrorTests.testResizeErrorCases[1].json'], '623b9b6'),
    ('Java:testPoolOData', 'java', [JAVA + 'PoolTests.testPoolOData[1].json'], '623b9b6'),
    ('Java:canUpdateJobState', 'java', [JAVA + 'JobTests.canUpdateJobState[1].json'], '623b9b6'),
    ('Java:canCRUDJobSchedule', 'java', [JAVA + 'JobScheduleTests.canCRUDJobSchedule[1].json'], '623b9b6'),
    ('Java:canCrudJob', 'java', [JAVA + 'JobTests.canCrudJob[1].json'], '623b9b6'),
    ('Java:testPoolCRUD', 'java', [JAVA + 'SharedKeyTests.testPoolCRUD[1].json'], '0306ba2'),
    ('Go:TestPool', 'go', [GO + 'TestPool.json[0:2]', GO + 'TestPool/Resize.json', GO + 'TestPool/AutoScale.json',
                           GO + 'TestPool.json[2:]'], '263c9d5'),
    ('Go:TestNode', 'go', [GO + 'TestNode.json'], '263c9d5'),
    ('Go:TestNode/File', 'go', [GO + 'TestNode/File.json'], '263c9d5'),
    ('Go:TestJob', 'go', [GO + 'TestJob.json'], '263c9d5'),
    ('Go:TestJobSchedule', 'go', [GO + 'TestJobSchedule.json'], '263c9d5'),
    ('Go:TestTask', 'go', [GO + 'TestTask.json[0:2]', GO + 'TestTask/Replace.json', GO + 'TestTask.json[2:]'],
     '67e4cda'),
    ('N:GetTaskFile', 'dotnet', [NET + 'FileIntegrationTests/GetTaskFile.json'], '03f2554'),
    ('N:AutoScale', 'dotnet', [NET + 'BatchPoolIntegrationTests/AutoScale.json'], '03f2554'),
    ('N:BatchNodeUser', 'dotnet', [NET + 'BatchNodeIntegrationTests/BatchNodeUser.json'], '03f2554'),
    ('N:Scheduling', 'dotnet', [NET + 'BatchNodeIntegrationTests/Scheduling.json'], '03f2554'),
    ('N:GetRemoteLoginSettings', 'dotnet', [NET + 'BatchNodeIntegrationTests/GetRemoteLoginSettings.json'], '03f2554'),
    ('N:DeleteTaskFile', 'dotnet', [NET + 'FileIntegrationTests/DeleteTaskFile.json'], '03f2554'),
    ('N:GetNodeFile', 'dotnet', [NET + 'FileIntegrationTests/GetNodeFile.json'], '03f2554'),
    ('Java:canReadFromTaskFile', 'java', [JAVA + 'FileTests.canReadFromTaskFile[1].json'], 'ac679f8'),
    ('Java:canReadFromNode', 'java', [JAVA + 'FileTests.canReadFromNode[1].json'], '623b9b6'),
    ('Java:testJobUser', 'java', [JAVA + 'TaskTests.testJobUser[1].json'], '67c9701'),
    ('Java:testCreateTasks', 'java', [JAVA + 'TaskTests.testCreateTasks[1].json'], 'bb52a22'),
    ('Go:TestNode/Reboot', 'go', [GO + 'TestNode/Reboot.json'], '263c9d5'),
    ('Go:TestNode/Reimage', 'go', [GO + 'TestNode/Reimage.json'], '263c9d5'),
    ('Go:TestApplications', 'go', [GO + 'TestApplications.json'], '67e4cda'),
    ('Go:TestNodeDeallocate', 'go', [GO + 'TestNodeDeallocate.json'], '67e4cda'),
    ('Go:TestCertificates', 'go', [GO + 'TestCertificates.json'], '8e5f9fa'),
    ('Go:TestJob/Schedule', 'go', [GO + 'TestJob/Schedule.json'], '75e8449'),
    ('Go:TestListSupportedImages', 'go', [GO + 'TestListSupportedImages.json'], '263c9d5'),
]
# Exchanges a replay cannot reproduce, by recording and entry label, with the reason (listed, never sent).
_TASK_ORDER = ('rests on an order the service leaves undefined ("ordering of task execution is not defined", '
               'learn.microsoft.com/azure/batch/jobs-and-tasks): go-task-1 (sleep 300) was terminated and '
               'reactivated, then go-task-2 was added, all before the pool\'s one node had started; when the node came '
               'up both were active and the service ran go-task-2 first. No rule gives that order (go-task-1 was both '
               'created and made active again before go-task-2 was added), so it is one draw of an undefined order; '
               'the emulator, in the same situation, runs the task first in line (go-task-1), so go-task-2 waits '
               '300 s and has no files yet')
_OTHER_TESTS_FILE = ('reads stdout.txt of a task of another test (canReadFromTaskFile, run earlier on the same shared '
                     'pool) from the node: a replay has a fresh emulator per recording, where that job never ran')
_OTHER_FILE = 'workitems%2Fjava-job-2%2Fjob-1%2Fjava-task-2%2Fstdout.txt'
UNREPLAYABLE = {
    ('Java:canReadFromNode', f'{method} /pools/{{poolId}}/nodes/{{node0}}/files/{_OTHER_FILE} #{index}'):
        _OTHER_TESTS_FILE
    for method, index in (('GET', 8), ('HEAD', 9))
} | {
    ('Go:TestTask', f'GET /jobs/{{jobId}}/tasks/{{taskId}}{suffix} #{index}'): _TASK_ORDER
    for suffix, index in (('', 9), ('/files', 10))
} | {
    ('Go:TestTask', f'{method} /jobs/{{jobId}}/tasks/{{taskId}}/files/task.txt #{index}'): _TASK_ORDER
    for method, index in (('HEAD', 11), ('GET', 12), ('DELETE', 13))
}
OUR_ID = re.compile(r'/(?:net|java|go)-([a-z]+)-\d+')
PREFIX = {'dotnet': 'net', 'java': 'java', 'go': 'go'}

ANSWER_HEADERS = ['DataServiceId', 'ETag', 'Last-Modified', 'Location', 'Content-Type', 'DataServiceVersion',
                  'request-id']
FILE_HEADERS = ['ocp-batch-file-isdirectory', 'ocp-batch-file-mode', 'ocp-batch-file-url', 'ocp-creation-time']
WINDOWS_FILE_HEADERS = ('ocp-creation-time', 'ocp-batch-file-mode')
# The port a NAT rule maps to a Windows node's RDP port 3389; the replay's Linux node is reached over SSH.
WINDOWS_VALUES = ('remoteLoginPort', 'ipv6RemoteLoginPort')
FILE_VALUES = ('ocp-batch-file-isdirectory', 'ocp-batch-file-mode')
DATETIME = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d')
# Settable pool properties a shared fixture pool is made with, taken from the recorded GET of it.
POOL_SETTABLE = ('vmSize', 'targetDedicatedNodes', 'enableInterNodeCommunication', 'taskSlotsPerNode', 'metadata',
                 'userAccounts', 'virtualMachineConfiguration', 'networkConfiguration', 'taskSchedulingPolicy')
# Values that depend on the clock, on a real VM's progress or on the account: never compared.
VOLATILE = {'id', 'url', 'eTag', 'lastModified', 'creationTime', 'stateTransitionTime', 'previousState',
            'previousStateTransitionTime', 'allocationState', 'allocationStateTransitionTime', 'state',
            'currentDedicatedNodes', 'currentLowPriorityNodes', 'startTime', 'endTime', 'odata.metadata',
            'poolId', 'resizeErrors', 'nodeId', 'nodeUrl', 'affinityId', 'ipAddress', 'lastBootTime',
            'allocationTime', 'runningTasksCount', 'runningTaskSlotsCount', 'totalTasksRun', 'totalTasksSucceeded',
            'retryCount', 'requeueCount', 'taskRootDirectory', 'taskRootDirectoryUrl', 'exitCode', 'stats',
            'currentNodeCommunicationMode', 'value', 'resizeTimeout', 'subnetId', 'name', 'displayName',
            'commandLine', 'publisher', 'offer', 'sku', 'nodeAgentSKUId', 'applicationId', 'terminateReason',
            'remoteLoginIPAddress', 'ipv6RemoteLoginIPAddress',  # the recorded account's public addresses
            'username',  # ours in the request (a pool user's name), as 'name' is
            # The spec: task counts "may not always be up to date"; the recorded ones lag the tasks just added.
            'taskCounts', 'taskSlotCounts'}
# The node agent's build (1.12.9, 1.12.15, 1.12.24 across the recordings): it changes with the service's
# releases, and the emulator's nodes name their own.
VOLATILE_PATHS = {'nodeAgentInfo.version'}
# Keys whose presence depends on a real VM's timing (seen or not seen depending on when the GET came).
TIMING_KEYS = {'previousState', 'previousStateTransitionTime', 'resizeErrors', 'stats', 'executionInfo',
               'currentNodeCommunicationMode', 'certificateReferences', 'endTime', 'terminateReason'}
TASK_SCHEDULED_KEYS = {'nodeInfo', 'previousState', 'previousStateTransitionTime'}
LINUX_IMAGE = {'publisher': 'canonical', 'offer': '0001-com-ubuntu-server-jammy', 'sku': '22_04-lts',
               'version': 'latest'}
LINUX_AGENT = 'batch.node.ubuntu 22.04'
# A certificate of ours (self-signed, CN=replay, public part only; its key was not kept) for the recorded one.
REPLAY_CERTIFICATE = (
    'MIIDAzCCAeugAwIBAgIUT3HWbnYBido56QpwjnukKH2SwgswDQYJKoZIhvcNAQELBQAwETEPMA0GA1UEAwwGcmVwbGF5MB4X'
    'DTI2MTIwMjE5MDQ1MVoXDTI2MTIwMzE5MDQ1MVowETEPMA0GA1UEAwwGcmVwbGF5MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A'
    'MIIBCgKCAQEAvwKOBxxNqz4yGEFRVib7aeTf4DWAZnR96anN6BgoUqHHaTwd8VE/O+uTkLvOAeNCTZwgWqihSPW5qSg4skqU'
    'VxROX1zxcq6/DWGFG/85mJ/AwXkcnTLyOPcOiyRQk4bTfCLHfVsGctCa6KYBXwuHBFVUmFs5b/YXHWlU3tZCyEX/DgfjzYxf'
    'iTCA/qdJY6FfB6ePNKzcUIOemTHsA8brQ41RatdFtVY3gvHzq8gS+8D35NSFfUe4bW26Gkv1c8Dt3mKkCcHoaErQjruRFsQG'
    'B5PhVZ8D757FL6Cx0E8hmgJW/qSYf7tGvrJ8v1rfhRdrsDn8P1u+cNUgAI9iB82ykQIDAQABo1MwUTAdBgNVHQ4EFgQUGkHv'
    'KWQIGlO3cyo05oK39XZiuw8wHwYDVR0jBBgwFoAUGkHvKWQIGlO3cyo05oK39XZiuw8wDwYDVR0TAQH/BAUwAwEB/zANBgkq'
    'hkiG9w0BAQsFAAOCAQEAS50Yfahv+vBggjq+TGGpEoEFvLP3VfXTrEp9kzV93MeMU0ZmzRToOc1sGAkwa8NX4drmq81SZXc/'
    'uCRGnmlDCCJM/OwRcONvRYKj0BgoDhjHSnUASiN4pBrP0F5uPZybSugTB/xWovxCxBf/13PqqpZslxCCeKhAZ8cPorJF5ZuU'
    'Aq2naJX2K31aohcTS53uXKgkQ9rf0pD/hC7HtzMNcxpU3+9e6BBByEHH328pN05M0CS0z17ybXecoKHLA2v2kEi/ZphVoFm8'
    '0J7eOR9/WjhqwA3HxZh/NG/vD/PG568Pks4XpXX2jO6ZUQRHs040auYOJ3ztAYeFzjFA5JLZaQ=='
)
REPLAY_THUMBPRINT = '809849f4df22534eeaf9235effa0ea135aa38564'  # its SHA-1
THUMBPRINT = re.compile(r'(thumbprint=)[0-9a-f]{40}', re.IGNORECASE)
REPLAY_SUBNET = ('/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/replay/providers/'
                 'Microsoft.Network/virtualNetworks/replay/subnets/default')
COLLECTIONS = ('pools', 'jobs', 'jobschedules', 'tasks', 'nodes', 'users', 'applications', 'certificates')
KIND = {'pools': 'pool', 'jobs': 'job', 'jobschedules': 'schedule', 'tasks': 'task', 'users': 'user',
        'applications': 'app'}


class Ids:
    """Maps the recording's ids to ours, by kind, in order of first appearance."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.names, self.counts = prefix, {}, {}

    def ours(self, kind: str, recorded: str) -> str:
        if recorded not in self.names:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.names[recorded] = f'{self.prefix}-{kind}-{self.counts[kind]}'
        return self.names[recorded]


def split(uri: str) -> tuple[str, str, list[tuple[str, str]]]:
    """Host, path as sent (percent-encoding kept: a file path may carry %2F), query parameters."""
    parts = urlsplit(uri)
    return f'{parts.scheme}://{parts.netloc}', parts.path, parse_qsl(parts.query, keep_blank_values=True)


def our_path(path: str, ids: Ids, nodes: dict[str, str]) -> tuple[str, str]:
    """The path with our ids, and '' or why it cannot be sent (a node id the replay does not know)."""
    segments = path.strip('/').split('/')
    out, problem = [], ''
    for index, raw in enumerate(segments):
        segment = unquote(raw)
        collection = segments[index - 1] if index else ''
        if collection == 'nodes':
            if segment not in nodes:
                problem = 'names a node the replay has not listed yet (node ids are the service\'s)'
            out.append('{' + nodes.get(segment, 'unknown_node') + '}')
        elif collection in KIND and segment not in ('$count',):
            out.append(ids.ours(KIND[collection], segment))
        elif 'thumbprint=' in segment.lower():  # certificates(thumbprintAlgorithm=sha1,thumbprint=...)
            out.append(THUMBPRINT.sub(lambda m: m.group(1) + REPLAY_THUMBPRINT, segment))
        elif collection == 'files':
            out.append(_our_file_path('/'.join(segments[index:]), ids))  # encoded as the client sent it
            break
        else:
            out.append(segment)
    return '/' + '/'.join(out), problem


def _our_file_path(sent: str, ids: Ids) -> str:
    """A node file path under workitems/{job}/job-1/{task} names our job and task (separators kept as sent)."""
    separator = next((mark for mark in ('%2F', '%5C') if mark in sent.upper()), '/')  # as sent, or a backslash
    sent = sent.replace(separator.lower(), separator)
    parts = sent.split(separator)
    if len(parts) > 3 and parts[0] == 'workitems':
        parts[1], parts[3] = ids.ours('job', unquote(parts[1])), ids.ours('task', unquote(parts[3]))
    return separator.join(parts)


def our_body(value: object, ids: Ids, key: str = '', windows: list[bool] | None = None) -> object:
    """The request body's property set with our values."""
    if isinstance(value, dict):
        if key == 'imageReference' and 'windows' in json.dumps(value).lower():
            if windows is not None:
                windows.append(True)
            return dict(LINUX_IMAGE)
        out = {}
        for name, item in value.items():
            if name == 'id' and key in ('', 'pool'):
                continue  # set by the caller with the entity's kind
            if name == 'id' and key == 'value' and isinstance(item, str):
                out[name] = ids.ours('task', item)  # a task of addtaskcollection: named as its paths name it
                continue
            out[name] = our_body(item, ids, name, windows)
        if key == 'metadata' or ('name' in out and 'value' in out and len(out) == 2):
            out = {'name': 'replay-key', 'value': 'replay-value'}
        if 'certificateFormat' in value and 'data' in value:  # a certificate to add: ours
            out['data'] = REPLAY_CERTIFICATE
        return out
    if isinstance(value, list):
        return [our_body(item, ids, key, windows) for item in value]
    if not isinstance(value, str):
        return value
    if key == 'nodeAgentSKUId' and 'windows' in value.lower():
        return LINUX_AGENT
    if key == 'poolId':
        return ids.ours('pool', value)
    if key == 'jobId':
        return ids.ours('job', value)
    if key == 'commandLine':  # a Linux command is the test's fact (what files it writes); a Windows one is not ours
        return value if value.startswith(('/bin/sh ', '/bin/bash ')) else '/bin/sh -c "echo replay"'
    if key == 'displayName':
        return 'replay display name'
    if key in ('name', 'username'):  # a user account and a task's user identity keep naming the same user
        return 'replay-name'
    if key == 'containerUrl':  # where node logs go: an account of ours (the emulator only checks its form)
        return 'https://replaystorage.blob.core.windows.net/logs?sv=x'
    if key in ('password', 'accountKey', 'sasKey'):
        return 'Replay#Pass-1234'
    if key in ('sshPrivateKey', 'sshPublicKey'):
        return 'c3NoLXJlcGxheQ=='
    if key == 'thumbprint':
        return REPLAY_THUMBPRINT.upper() if value.isupper() else REPLAY_THUMBPRINT
    if key == 'subnetId':  # a subnet of ours, not the recorded subscription's
        return REPLAY_SUBNET
    if key == 'applicationId':
        return 'replay-app'
    return value


def relative_times(value: object, date: str | None) -> object:
    """Datetimes a client sent become offsets from the moment of sending ({now+600s}), as they were recorded."""
    if isinstance(value, dict):
        return {key: relative_times(item, date) for key, item in value.items()}
    if isinstance(value, list):
        return [relative_times(item, date) for item in value]
    if isinstance(value, str) and date and DATETIME.match(value):
        sent = datetime.fromisoformat(re.sub(r'(\.\d{6})\d*', r'\1', value).replace('Z', '+00:00'))
        offset = round((sent - parsedate_to_datetime(date)).total_seconds())
        return f'{{now{offset:+d}s}}'
    return value


def collapse_polls(entries: list[dict]) -> list[tuple[dict, dict | None]]:
    """Runs of one GET (a client polling for a state, or for a deleted entity to go) become its last request;
    the first response of the run is kept to see what changed."""
    out: list[tuple[dict, dict | None]] = []
    for entry in entries:
        if out and entry['RequestMethod'] == 'GET' and out[-1][0]['RequestMethod'] == 'GET' \
                and out[-1][0]['RequestUri'] == entry['RequestUri']:
            first = out[-1][1] or out[-1][0]
            out[-1] = (entry, first)
        else:
            out.append((entry, None))
    return out


def headers_expected(headers: dict, ids: Ids, host: str, nodes: dict, files: bool) -> dict:
    present = {name.lower(): value for name, value in headers.items()}
    wanted: dict[str, object] = {}
    for name in ANSWER_HEADERS + (FILE_HEADERS if files else []):
        value = present.get(name.lower())
        if value is None:
            wanted[name] = False
        elif name == 'Content-Type' or name in FILE_VALUES:
            wanted[name] = value
        elif name == 'DataServiceId' and value.startswith(host) and '/jobs/job-' not in value:
            path, problem = our_path(value[len(host):], ids, nodes)
            wanted[name] = True if problem else '{base}' + path
        else:
            wanted[name] = True
    return wanted


def key_expectations(body: dict) -> tuple[dict, dict]:
    """Top-level and one-level-down key sets: required (seen) and optional (timing-dependent)."""
    required, optional = {}, {}
    top = set(body)
    required[''] = sorted(top - TIMING_KEYS - {'odata.nextLink'})
    optional[''] = sorted((top & TIMING_KEYS) | {'odata.nextLink'} if 'value' in top else top & TIMING_KEYS)
    if str(body.get('odata.metadata', '')).endswith('#tasks/@Element'):
        # Whether the task was scheduled yet when the GET came: a real node takes a task up seconds after it was
        # added, the emulator's in milliseconds; what scheduling brings may be there though the recording has not.
        optional[''] = sorted(set(optional['']) | (TASK_SCHEDULED_KEYS - top))
    if 'value' not in top:
        for key, item in body.items():
            if isinstance(item, dict) and key not in TIMING_KEYS and item:
                required[key] = sorted(set(item) - TIMING_KEYS)
                optional[key] = sorted(set(item) & TIMING_KEYS)
    return required, optional


def defaults(body: object, prefix: str = '', depth: int = 0) -> dict:
    """Scalar values (enumerations, flags, numbers, durations) the service answered with."""
    out: dict = {}
    if not isinstance(body, dict) or depth > 2:
        return out
    for key, item in body.items():
        if key in VOLATILE or key in TIMING_KEYS or key.startswith('odata'):
            continue
        dotted = f'{prefix}{key}'
        if dotted in VOLATILE_PATHS:
            continue
        text = isinstance(item, str) and len(item) < 40 and not item.startswith(('http', '/'))
        if isinstance(item, (bool, int, float)) or (text and not DATETIME.match(item)):
            out[dotted] = item
        elif isinstance(item, dict):
            out.update(defaults(item, dotted + '.', depth + 1))
    return out


def derive(name: str, language: str, parts: list[str], commit: str, recording: dict) -> dict:
    ids, nodes = Ids(PREFIX[language]), {}
    entries: list[dict] = []
    host = ''
    windows_pools: set[str] = set()
    created: set[str] = set()
    sent: set[tuple[str, str]] = set()
    path = parts[0].split('[')[0] if language != 'java' else parts[0]
    source = '/'.join(path.split('/')[-2:]) if language != 'java' else path.split('/')[-1]
    for entry, first in collapse_polls(recording['Entries']):
        host, recorded_path, query = split(entry['RequestUri'])
        method = entry['RequestMethod']
        body = entry.get('RequestBody')
        windows: list[bool] = []
        our = None
        created_id = None
        if isinstance(body, (dict, list)):
            our = relative_times(our_body(body, ids, windows=windows), (entry.get('ResponseHeaders') or {}).get('Date'))
            collection = recorded_path.strip('/').split('/')[-1]
            key = 'name' if collection == 'users' else 'id'
            if isinstance(body, dict) and key in body and isinstance(our, dict) and method == 'POST':
                created_id = body[key]
                if created_id == 'Sanitized':  # Go sanitizes body ids: the answer or a later path names it
                    created_id = _sanitized_id(recording['Entries'], entry, collection)
                our = {**our, key: ids.ours(KIND.get(collection, 'entity'), created_id)}
                if windows and collection == 'pools':
                    windows_pools.add(our['id'])
                if collection == 'jobs' and (our.get('poolInfo') or {}).get('poolId') in windows_pools:
                    windows_pools.add(our['id'])  # its tasks run on the Windows pool's nodes
            elif isinstance(body, dict) and isinstance(body.get('id'), str) and method in ('PUT', 'PATCH'):
                # An id sent in an update's body (Go's schedule PUT sent another one than the path's): ours too
                segments = recorded_path.strip('/').split('/')
                our = {**our, 'id': ids.ours(KIND.get(segments[-2], 'entity'), body['id'])}
        entries += _made_elsewhere(recorded_path, method, body, created_id, entry['StatusCode'], ids, created,
                                   language, recording['Entries'])
        request_path, problem = our_path(recorded_path, ids, nodes)
        if '/files/' in request_path and any(f'/{pool}/' in request_path for pool in windows_pools):
            # A Windows node's taskRootDirectory has backslashes, so the client's path had them; from the replay's
            # Linux node (workitems/{job}/job-1/{task}) a client builds it with slashes.
            request_path = request_path.replace('%5C', '%2F')
        label = method + ' ' + OUR_ID.sub(lambda m: '/{' + m.group(1) + 'Id}', request_path)
        item: dict = {'label': f'{label} #{len(entries)}', 'source': source,
                      'method': method, 'path': request_path, 'status': entry['StatusCode']}
        if '%' in request_path:
            item['path_encoded'] = True
        parameters = [(k, v) for k, v in query if k != 'api-version']
        version = dict(query).get('api-version')
        if version:
            item['api_version'] = version
        if parameters:
            item['query'] = dict(parameters)
        if our is not None:
            item['body'] = our
        response = entry.get('ResponseBody')
        files = '/files/' in recorded_path and method in ('GET', 'HEAD')
        item['headers'] = headers_expected(entry.get('ResponseHeaders') or {}, ids, host, nodes, files)
        if isinstance(response, dict) and 'code' in response and entry['StatusCode'] >= 400:
            item['error_code'] = response['code']
            values = {v.get('key'): None for v in response.get('values') or [] if isinstance(v, dict)}
            if values:
                item['error_values'] = values
            item['keys_at'] = {'': sorted(response)}
        elif isinstance(response, dict) and method == 'GET':
            required, optional = key_expectations(response)
            item['keys_between'] = {key: {'required': required[key], 'optional': optional.get(key, [])}
                                    for key in required}
            if 'value' not in response:
                item['defaults'] = defaults(response)
            _capture_nodes(item, response, recorded_path, nodes)
            if first is not None and first['StatusCode'] == entry['StatusCode']:
                before = first.get('ResponseBody') if isinstance(first.get('ResponseBody'), dict) else {}
                fields = ('value.0.state',) if 'value' in response else ('allocationState', 'state')
                states = {item.get('state') for item in response.get('value') or [] if isinstance(item, dict)}
                if len(states) == 1 and len(response['value']) > 1:
                    fields = ('value.*.state',)  # a client polling until every item (all its tasks) got there
                for field in fields:
                    value = _at(response, field)
                    if value is not None and _at(before, field) != value:
                        item['wait'] = {'path': request_path, 'field': field, 'equals': value}
                        break
        if isinstance(response, dict) and response.get('allocationState') == 'steady' and 'wait' not in item \
                and '$select' not in dict(parameters):
            item['wait'] = {'path': request_path, 'field': 'allocationState', 'equals': 'steady'}
        if method == 'POST' and entry['StatusCode'] < 300 and re.fullmatch(r'/pools/[^/]+/(enableautoscale|resize)',
                                                                             recorded_path):
            # The spec refuses these while a resize is under way: the recorded success shows the pool was steady.
            item['wait'] = {'path': request_path.rsplit('/', 1)[0], 'field': 'allocationState', 'equals': 'steady'}
        if (first is not None and first['StatusCode'] != entry['StatusCode']) or \
                (method == 'GET' and entry['StatusCode'] == 404 and ('DELETE', request_path) in sent):
            # a client polling until the entity is gone, or looking after it was deleted: it goes in its own time
            item['wait'] = {'path': request_path, 'status': entry['StatusCode']}
        sent.add((method, request_path))
        if problem:
            item['replayable'], item['reason'] = False, problem
        if any(f'/{pool}/' in request_path + '/' for pool in windows_pools):
            # The replay's node is Linux: what the recorded Windows node's OS decided is not compared (its image
            # names; a file's creation time, which Windows keeps and Linux does not, and the Linux file mode).
            item['defaults'] = {k: v for k, v in item.get('defaults', {}).items()
                                if 'windows' not in k.lower() and k not in WINDOWS_VALUES}
            for header in WINDOWS_FILE_HEADERS:
                item['headers'].pop(header, None)
            if not item['defaults']:
                item.pop('defaults')
        entries.append(item)
    return {'name': name, 'language': language, 'sources': [f'{part}@{commit}' for part in parts], 'entries': entries}


def mark_unreplayable(recording: dict) -> None:
    """Entries of UNREPLAYABLE are listed with their reason and not sent (also in recordings derived earlier)."""
    for entry in recording['entries']:
        reason = UNREPLAYABLE.get((recording['name'], entry['label']))
        if reason:
            entry['replayable'], entry['reason'] = False, reason


def wait_for_reactivatable(recording: dict) -> None:
    """A recorded reactivate that succeeded shows the task was completed then (the spec: only a completed task
    that failed can be reactivated); a terminate the replay sent just before may still be ending a task the
    emulator's node had already started (a real node had not, in the recording): wait for completed."""
    for entry in recording['entries']:
        if entry['method'] == 'POST' and entry['status'] < 300 and 'wait' not in entry and \
                re.fullmatch(r'/jobs/[^/]+/tasks/[^/]+/reactivate', entry['path']):
            entry['wait'] = {'path': entry['path'].rsplit('/', 1)[0], 'field': 'state', 'equals': 'completed'}


def _at(body: dict, dotted: str) -> object:
    """The value at a dotted path; with ``*`` for every item of a list, their one common value (or None)."""
    if '*' in dotted:
        head, tail = dotted.split('.*.', 1)
        found = {json.dumps(_at(item, tail)) for item in _at(body, head) or []}
        return json.loads(found.pop()) if len(found) == 1 else None
    for part in dotted.split('.'):
        if isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        elif isinstance(body, dict):
            body = body.get(part)
        else:
            return None
    return body


def _sanitized_id(all_entries: list[dict], current: dict, collection: str) -> str:
    located = (current.get('ResponseHeaders') or {}).get('DataServiceId', '')
    if f'/{collection}/' in located and '/jobs/job-' not in located:
        return unquote(located.rsplit('/', 1)[1])
    after = all_entries[all_entries.index(current) + 1:]
    for entry in after:
        segments = split(entry['RequestUri'])[1].strip('/').split('/')
        if len(segments) >= 2 and segments[0] == collection:
            return segments[1]
    return 'Sanitized'


def _pool_as_seen(all_entries: list[dict], recorded_id: str, ids: Ids) -> dict:
    """A fixture pool made as the recording's first GET of it shows it (subnets of the recorded account left out)."""
    for entry in all_entries:
        body = entry.get('ResponseBody')
        if entry['RequestMethod'] == 'GET' and isinstance(body, dict) and \
                split(entry['RequestUri'])[1].rstrip('/').endswith(f'/pools/{recorded_id}'):
            seen = {key: body[key] for key in POOL_SETTABLE if key in body}
            seen.get('networkConfiguration', {}).pop('subnetId', None)
            for account in seen.get('userAccounts', []):
                account['password'] = 'x'
            seen = our_body(seen, ids)
            vm = seen.get('virtualMachineConfiguration', {})
            vm.setdefault('imageReference', {}).pop('version', None)
            if 'ubuntu 18' in vm.get('nodeAgentSKUId', '') or 'windows' in vm.get('nodeAgentSKUId', ''):
                vm.update({'imageReference': dict(LINUX_IMAGE), 'nodeAgentSKUId': LINUX_AGENT})
            return seen
    return {'vmSize': 'standard_d1_v2', 'targetDedicatedNodes': 0,
            'virtualMachineConfiguration': {'imageReference': dict(LINUX_IMAGE), 'nodeAgentSKUId': LINUX_AGENT}}


def _made_elsewhere(recorded_path: str, method: str, body: object, created_id: str | None, status: int, ids: Ids,
                    created: set[str], language: str, all_entries: list[dict]) -> list[dict]:
    """Setup creates for the pools and jobs a recording uses but its test made elsewhere (a shared fixture)."""
    segments = recorded_path.strip('/').split('/')
    setup: list[dict] = []
    wanted = []
    if created_id is not None and len(segments) == 1:
        created.add(f'{segments[0]}/{created_id}')
    elif status < 300 and len(segments) >= 2 and segments[0] in ('pools', 'jobs'):
        wanted.append((segments[0], segments[1]))
    if isinstance(body, dict) and isinstance(body.get('poolInfo'), dict) and body['poolInfo'].get('poolId'):
        wanted.append(('pools', body['poolInfo']['poolId']))
    for collection, recorded_id in wanted:
        if f'{collection}/{recorded_id}' in created:
            continue
        created.add(f'{collection}/{recorded_id}')
        ours = ids.ours(KIND[collection], recorded_id)
        if collection == 'pools':
            made = {'id': ours, **_pool_as_seen(all_entries, recorded_id, ids)}
        else:
            pool = ids.ours('pool', f'{language}-fixture-pool')
            setup.append({'label': f'setup: a pool for {ours}', 'method': 'POST', 'path': '/pools', 'setup': True,
                          'status': 201, 'body': {'id': pool, 'vmSize': 'standard_d1_v2', 'targetDedicatedNodes': 0,
                                                  'virtualMachineConfiguration': {'imageReference': dict(LINUX_IMAGE),
                                                                                  'nodeAgentSKUId': LINUX_AGENT}}})
            made = {'id': ours, 'poolInfo': {'poolId': pool}}
        setup.append({'label': f'setup: {ours}, which the recorded test made elsewhere', 'method': 'POST',
                      'path': f'/{collection}', 'setup': True, 'status': 201, 'body': made})
    return setup


def _capture_nodes(item: dict, response: dict, recorded_path: str, nodes: dict) -> None:
    ran_on = (response.get('nodeInfo') or {}).get('nodeId') if isinstance(response.get('nodeInfo'), dict) else None
    if ran_on and ran_on not in nodes:  # a task's node, named by the task (as a client finds it)
        nodes[ran_on] = f'node{len(nodes)}'
        item['capture'] = {nodes[ran_on]: 'nodeInfo.nodeId'}
    if not recorded_path.rstrip('/').endswith('/nodes') or not isinstance(response.get('value'), list):
        return
    capture = {}
    for index, node in enumerate(response['value']):
        node_id = node.get('id') if isinstance(node, dict) else None
        if node_id == 'Sanitized':  # Go sanitizes ids: the node's URL still names it
            node_id = unquote(node.get('url', '').rsplit('/', 1)[-1])
        if node_id and node_id not in nodes:
            nodes[node_id] = f'node{len(nodes)}'
            capture[nodes[node_id]] = f'value.{index}.id'
    if capture:
        item['capture'] = capture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--assets', required=True, help='a folder with Azure/azure-sdk-assets files at their paths')
    parser.add_argument('--data', default=DATA_FILE)
    parser.add_argument('--only', nargs='+', metavar='NAME', help='derive only these recordings (the others stay)')
    args = parser.parse_args(argv)
    with open(args.data, encoding='utf-8') as handle:
        data = json.load(handle)
    derived, missing = [], []
    for name, language, parts, commit in SOURCES:
        if args.only and name not in args.only:
            continue
        entries = []
        for part in parts:
            path, start, end = re.fullmatch(r'(.*?)(?:\[(\d*):(\d*)\])?', part).groups()
            file = os.path.join(args.assets, path)
            if not os.path.exists(file):
                missing.append(path)
                continue
            with open(file, encoding='utf-8') as handle:
                found = json.load(handle)['Entries']
            entries += found[int(start or 0):int(end) if end else None]
        if entries:
            derived.append(derive(name, language, parts, commit, {'Entries': entries}))
    if missing:
        print('missing (not derived):\n  ' + '\n  '.join(missing), file=sys.stderr)
        return 1
    fresh = {recording['name']: recording for recording in derived}
    known = {recording['name'] for recording in data['recordings']}
    data['recordings'] = [fresh.get(r['name'], r) for r in data['recordings']] + \
        [r for r in derived if r['name'] not in known]  # in place; new ones at the end
    for recording in data['recordings']:
        mark_unreplayable(recording)
        if recording['name'].split(':')[0] in ('N', 'Java', 'Go'):  # the derived ones (P:/J: are by hand)
            wait_for_reactivatable(recording)
    with open(args.data, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
        handle.write('\n')
    print(f'derived {sum(len(r["entries"]) for r in derived)} exchanges from {len(derived)} recordings')
    return 0


if __name__ == '__main__':
    sys.exit(main())
