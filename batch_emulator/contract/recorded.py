"""What the real service writes that the spec does not say: defaults, spellings and key order.

The spec (``contract.py``) says which properties a response may hold and of what type; the
service's own serialiser adds the rest, and these tables copy it from Microsoft's SDK test
recordings of the real service (``../shared/reference/recorded-service-behaviour.md``, section 2;
the tag after each entry names the recording). Each table is keyed by the spec's definition name,
so a default or a spelling applies wherever that definition appears (a pool's start task and a
node's, a task's constraints and a job preparation task's).

- ``DEFAULTS``: properties the service fills in when they were not sent.
- ``SPELLING``: how the service spells a value it was sent (the spec's enum values are accepted
  in any casing; the service then writes some in PascalCase, some lower-cased).
- ``ORDER``: the service's key order where it differs from the spec's; properties not named keep
  the spec's order after those that are.
"""

from __future__ import annotations

from collections.abc import Callable

UNLIMITED = 'P10675199DT2H48M5.4775807S'  # "no limit": .NET TimeSpan.MaxValue
AUTO_USER = {'autoUser': {'scope': 'pool', 'elevationLevel': 'nonadmin'}}

DEFAULTS: dict[str, dict[str, object]] = {
    # 2.1 [P:create_pools, P:update_pools, J:pool/patch, J:pool/datadisk, P:ossec, J:pool/cvm, P:netcfg]
    'BatchPool': {'resizeTimeout': 'PT15M', 'enableAutoScale': False, 'enableInterNodeCommunication': False,
                  'taskSlotsPerNode': 1, 'taskSchedulingPolicy': {'nodeFillType': 'spread'}},
    'BatchTaskSchedulingPolicy': {'jobDefaultOrder': 'none'},
    'BatchVmImageReference': {'version': 'latest'},
    'BatchStartTask': {'userIdentity': AUTO_USER, 'maxTaskRetryCount': 0, 'waitForSuccess': True},
    'UserAccount': {'elevationLevel': 'nonadmin'},
    'DataDisk': {'caching': 'none', 'managedDisk': {}},
    'BatchOsDisk': {'ephemeralOSDiskSettings': {}, 'caching': 'none', 'managedDisk': {}},
    'ManagedDisk': {'storageAccountType': 'standard_lrs'},
    'NetworkConfiguration': {'dynamicVNetAssignmentScope': 'none', 'enableAcceleratedNetworking': False},
    'NetworkSecurityGroupRule': {'sourcePortRanges': ['*']},
    # 2.2 [P:jobs, J:job/create, J:job/list]
    'BatchJob': {'priority': 0, 'maxParallelTasks': -1, 'usesTaskDependencies': False, 'allowTaskPreemption': False,
                 'constraints': {}, 'onAllTasksComplete': 'noaction', 'onTaskFailure': 'noaction'},
    'BatchJobConstraints': {'maxWallClockTime': UNLIMITED, 'maxTaskRetryCount': 0},
    'BatchJobPreparationTask': {'id': 'jobpreparation', 'constraints': {}, 'userIdentity': AUTO_USER,
                                'waitForSuccess': True, 'rerunOnNodeRebootAfterSuccess': True},
    # Not recorded (no SDK recording has a job manager): the spec's documented defaults and the task's.
    'BatchJobManagerTask': {'requiredSlots': 1, 'killJobOnCompletion': True, 'userIdentity': AUTO_USER,
                            'runExclusive': True, 'allowLowPriorityNode': True},
    'BatchJobReleaseTask': {'id': 'jobrelease', 'maxWallClockTime': 'PT15M', 'retentionTime': 'P7D',
                            'userIdentity': AUTO_USER},
    'BatchAutoPoolSpecification': {'keepAlive': False},
    'BatchPoolSpecification': {'taskSlotsPerNode': 1, 'taskSchedulingPolicy': {'nodeFillType': 'spread'},
                               'resizeTimeout': 'PT15M', 'targetDedicatedNodes': 0, 'targetLowPriorityNodes': 0,
                               'enableAutoScale': False, 'enableInterNodeCommunication': False},
    # 2.3 [P:job_schedules]
    'BatchJobSpecification': {'priority': 0, 'maxParallelTasks': -1, 'allowTaskPreemption': False,
                              'usesTaskDependencies': False, 'onAllTasksComplete': 'noaction',
                              'onTaskFailure': 'noaction', 'constraints': {}},
    # 2.4 [P:files, J:task/*]
    'BatchTask': {'userIdentity': AUTO_USER, 'constraints': {}, 'requiredSlots': 1,
                  'executionInfo': {'retryCount': 0, 'requeueCount': 0}},
    'BatchTaskConstraints': {'maxWallClockTime': UNLIMITED, 'retentionTime': 'P7D', 'maxTaskRetryCount': 0},
    'BatchTaskContainerSettings': {'workingDirectory': 'taskWorkingDirectory'},
}


def _spelled(*values: str) -> Callable[[str], str]:
    """The service's spelling of each of ``values``, whatever the casing sent."""
    table = {value.lower(): value for value in values}
    return lambda value: table.get(value.lower(), value)


SPELLING: dict[tuple[str, str], Callable] = {
    ('BatchPool', 'vmSize'): str.lower,  # Standard_D2s_v3 -> standard_d2s_v3 [J:pool/create]
    ('BatchNode', 'vmSize'): str.lower,  # [J:node/get]
    ('BatchTaskSchedulingPolicy', 'nodeFillType'): _spelled('Spread', 'Pack'),  # [P:create_pools, J:pool2/fifo]
    ('BatchOsDisk', 'caching'): _spelled('None', 'ReadOnly', 'ReadWrite'),  # [P:ossec, J:pool/cvm]
    ('SecurityProfile', 'securityType'): str.lower,  # confidentialVM -> confidentialvm [J:pool/cvm]
    ('BatchPublicIpAddressConfiguration', 'provision'):  # [J:pool2/ipv6]
        _spelled('BatchManaged', 'UserManaged', 'NoPublicIPAddresses'),
    ('BatchPublicIpAddressConfiguration', 'ipFamilies'): sorted,  # ["IPv6","IPv4"] -> ["IPv4","IPv6"]
    ('BatchNodePlacementConfiguration', 'policy'): _spelled('Regional', 'Zonal'),  # [J:pool/autoos]
    ('OutputFileUploadConfig', 'uploadCondition'):  # [J:task/outfiles]
        _spelled('TaskSuccess', 'TaskFailure', 'TaskCompletion'),
    ('BatchApplicationPackageReference', 'applicationId'): str.lower,  # [J:task/apppkg]
    ('BatchTaskFailureInfo', 'category'): _spelled('UserError', 'ServerError'),  # exit code 2 [J:task/uid]
}

_ENTITY_HEAD = ('id', 'displayName', 'url', 'eTag', 'lastModified', 'creationTime', 'state', 'stateTransitionTime',
                'previousState', 'previousStateTransitionTime')

ORDER: dict[str, tuple[str, ...]] = {
    # 2.1 [J:pool/patch, P:create_pools]
    'BatchPool': (*_ENTITY_HEAD, 'allocationState', 'allocationStateTransitionTime', 'vmSize', 'resizeTimeout',
                  'currentDedicatedNodes', 'targetDedicatedNodes', 'currentLowPriorityNodes', 'targetLowPriorityNodes',
                  'resizeErrors', 'enableAutoScale', 'autoScaleFormula', 'autoScaleEvaluationInterval',
                  'autoScaleRun', 'enableInterNodeCommunication', 'startTask', 'applicationPackageReferences',
                  'userAccounts', 'metadata', 'taskSlotsPerNode', 'taskSchedulingPolicy',
                  'virtualMachineConfiguration', 'networkConfiguration', 'mountConfiguration', 'upgradePolicy'),
    'VirtualMachineConfiguration': ('imageReference', 'osDisk', 'nodeAgentSKUId', 'windowsConfiguration', 'dataDisks',
                                    'diskEncryptionConfiguration', 'extensions', 'nodePlacementConfiguration',
                                    'securityProfile'),
    'BatchTaskSchedulingPolicy': ('nodeFillType', 'jobDefaultOrder'),
    'SecurityProfile': ('securityType', 'encryptionAtHost', 'uefiSettings', 'proxyAgentSettings'),
    'BatchPoolSpecification': ('displayName', 'vmSize', 'taskSlotsPerNode', 'taskSchedulingPolicy', 'resizeTimeout',
                               'targetDedicatedNodes', 'targetLowPriorityNodes', 'enableAutoScale',
                               'autoScaleFormula', 'autoScaleEvaluationInterval', 'enableInterNodeCommunication',
                               'virtualMachineConfiguration'),
    # 2.2 [P:jobs]
    'BatchJob': (*_ENTITY_HEAD, 'priority', 'maxParallelTasks', 'usesTaskDependencies', 'allowTaskPreemption',
                 'constraints', 'jobManagerTask', 'jobPreparationTask', 'jobReleaseTask', 'commonEnvironmentSettings',
                 'poolInfo', 'executionInfo', 'onAllTasksComplete', 'onTaskFailure'),
    'BatchJobExecutionInfo': ('startTime', 'endTime', 'poolId', 'schedulingError', 'terminateReason'),
    # 2.3 [P:job_schedules]
    'BatchJobSpecification': ('displayName', 'priority', 'maxParallelTasks', 'allowTaskPreemption',
                              'usesTaskDependencies', 'onAllTasksComplete', 'onTaskFailure', 'constraints'),
    'RecentBatchJob': ('url', 'id'),  # [P:job_schedules]
    # 2.4 [P:files, J:task/uid]: creationTime before lastModified, unlike pools and jobs
    'BatchTask': ('id', 'displayName', 'url', 'eTag', 'creationTime', 'lastModified', 'state', 'stateTransitionTime',
                  'previousState', 'previousStateTransitionTime', 'commandLine', 'containerSettings', 'resourceFiles',
                  'outputFiles', 'environmentSettings', 'affinityInfo', 'applicationPackageReferences',
                  'userIdentity', 'authenticationTokenSettings', 'exitConditions', 'constraints', 'requiredSlots',
                  'executionInfo', 'nodeInfo', 'multiInstanceSettings', 'stats', 'dependsOn'),
    'BatchTaskExecutionInfo': ('startTime', 'endTime', 'exitCode', 'containerInfo', 'failureInfo', 'result',
                               'retryCount', 'lastRetryTime', 'requeueCount', 'lastRequeueTime'),
    # 2.5 [P:nodes, J:node/get]
    'BatchNode': ('id', 'url', 'state', 'schedulingState', 'stateTransitionTime', 'lastBootTime', 'allocationTime',
                  'ipAddress', 'ipv6Address', 'affinityId', 'vmSize', 'totalTasksRun', 'totalTasksSucceeded',
                  'runningTasksCount', 'runningTaskSlotsCount', 'recentTasks', 'startTask', 'startTaskInfo', 'errors',
                  'isDedicated', 'endpointConfiguration', 'nodeAgentInfo', 'virtualMachineInfo'),
    'BatchStartTaskInfo': ('state', 'startTime', 'endTime', 'exitCode', 'containerInfo', 'failureInfo', 'result',
                           'retryCount', 'lastRetryTime'),
    # 4 node counts [P:create_pools, J:pool/nodecounts]
    'BatchNodeCounts': ('creating', 'deallocated', 'deallocating', 'idle', 'leavingPool', 'offline', 'preempted',
                        'rebooting', 'reimaging', 'running', 'starting', 'startTaskFailed', 'unusable', 'unknown',
                        'upgradingOS', 'waitingForStartTask', 'total'),
}

# ----- response headers beyond the spec (section 1.2) -----------------------------------------------------
# The spec lists DataServiceId on the success answer of most changes and of a few reads; the service writes it
# on the changes (not on a GET), with these exceptions (operation id -> written or not).
DATA_SERVICE_ID: dict[str, bool] = {
    'Tasks_ReactivateTask': False,  # 204 without DataServiceId [J:task/reactivate]
    'Nodes_GetNodeRemoteLoginSettings': True,  # a GET whose answer names its URL [P:nodes]
}
# A created entity's URL (Location and DataServiceId) where the service writes another than the entity's own:
# a job create names .../jobs/job-1 whatever the job's id (section 6.1) [P:jobs, P:exc, J:job/create].
CREATED_URL: dict[str, str] = {'Jobs_CreateJob': '/jobs/job-1'}


def writes_data_service_id(operation_id: str, method: str, listed: bool) -> bool:
    """Does the service's success answer to the operation carry DataServiceId (``listed``: the spec says so)?"""
    return DATA_SERVICE_ID.get(operation_id, listed and method != 'GET')
