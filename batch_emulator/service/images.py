"""What the emulated Batch account offers: node images (with end-of-life dates) and VM sizes.

The list mirrors what the real service returns for a Batch account in 2025-2026:
current Ubuntu, Debian, AlmaLinux and Windows Server images with their node
agents. Every Linux image is emulated the same way: tasks run as processes on
this machine, and ``python3`` on the nodes' PATH is the emulator's own Python.
"""

from __future__ import annotations

import re

_EOL_FAR = None


def _image(publisher: str, offer: str, sku: str, agent: str, os_type: str = 'linux',
           end_of_life: str | None = _EOL_FAR, verification: str = 'verified',
           capabilities: list[str] | None = None) -> dict:
    image = {
        'nodeAgentSKUId': agent,
        'imageReference': {'publisher': publisher, 'offer': offer, 'sku': sku, 'version': 'latest'},
        'osType': os_type,
        'verificationType': verification,
    }
    if capabilities:
        image['capabilities'] = capabilities
    if end_of_life:
        image['batchSupportEndOfLife'] = end_of_life
    return image


SUPPORTED_IMAGES: list[dict] = [
    _image('canonical', 'ubuntu-24_04-lts', 'server', 'batch.node.ubuntu 24.04', end_of_life='2029-05-31T00:00:00Z'),
    _image('canonical', 'ubuntu-24_04-lts', 'server-gen1', 'batch.node.ubuntu 24.04',
           end_of_life='2029-05-31T00:00:00Z'),
    _image('canonical', '0001-com-ubuntu-server-jammy', '22_04-lts', 'batch.node.ubuntu 22.04',
           end_of_life='2027-04-30T00:00:00Z'),
    _image('canonical', '0001-com-ubuntu-server-jammy', '22_04-lts-gen2', 'batch.node.ubuntu 22.04',
           end_of_life='2027-04-30T00:00:00Z'),
    _image('canonical', '0001-com-ubuntu-server-focal', '20_04-lts', 'batch.node.ubuntu 20.04',
           end_of_life='2025-04-30T00:00:00Z'),
    _image('debian', 'debian-12', '12', 'batch.node.debian 12', end_of_life='2028-06-30T00:00:00Z'),
    _image('debian', 'debian-12', '12-gen2', 'batch.node.debian 12', end_of_life='2028-06-30T00:00:00Z'),
    _image('almalinux', 'almalinux-x86_64', '9-gen2', 'batch.node.el 9', verification='unverified'),
    _image('microsoftwindowsserver', 'windowsserver', '2022-datacenter', 'batch.node.windows amd64',
           os_type='windows', capabilities=['DockerCompatible']),
    _image('microsoftwindowsserver', 'windowsserver', '2025-datacenter', 'batch.node.windows amd64',
           os_type='windows'),
]

# VM sizes Batch accepts today (case-insensitive). The retired Basic_A*, Standard_A0-A11
# and the original D/DS/G series (no version suffix) are refused, as the service does.
_VM_SIZE = re.compile(
    r'^standard_('
    r'a\d+m?_v2'
    r'|b\d+[a-z]*(_v2)?'
    r'|d\d+[a-z]*_v[2-6]'
    r'|e\d+[a-z-]*_v[3-6]'
    r'|f\d+[a-z]*_v[26]'
    r'|l\d+[a-z]*_v[2-4]'
    r'|m\d+[a-z-]*(_v[23])?'
    r'|n[cdv]\d+[a-z_]*(v\d+)?'
    r'|h[bc]\d+[a-z_-]*(v\d+)?'
    r')$', re.IGNORECASE)


def is_supported_vm_size(vm_size: str) -> bool:
    return bool(_VM_SIZE.match(vm_size or ''))


def find_image(image_reference: dict, node_agent_sku_id: str) -> dict | None:
    """The supported image matching a pool's virtualMachineConfiguration, if any."""
    wanted = tuple((image_reference.get(key) or '').lower() for key in ('publisher', 'offer', 'sku'))
    for image in SUPPORTED_IMAGES:
        reference = image['imageReference']
        if (tuple(reference[key].lower() for key in ('publisher', 'offer', 'sku')) == wanted
                and image['nodeAgentSKUId'].lower() == (node_agent_sku_id or '').lower()):
            return image
    return None
