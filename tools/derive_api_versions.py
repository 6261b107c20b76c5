"""Derives batch_emulator/contract/versions.json: each served api-version's wire differences (run while developing).

    python tools/derive_api_versions.py --sdks DIR [--check]

DIR holds the azure-batch wheels of PyPI unpacked one per folder (``pip download --no-deps
azure-batch==4.1.3`` and so on for every release named in SDKS, each wheel unzipped into its own
folder). Each release carries its api-version's wire contract: the operations' URL templates and
HTTP methods, and every model's wire property names (``_attribute_map`` in the msrest generations,
``rest_field(name=...)`` in 15.0.0b2). The current version, 2025-06-01, is read from the spec the
emulator loads (``batch_emulator/contract/spec/BatchService.json``).

What is written (derived, no copy of any SDK or spec):
- ``changes``: per version, against the version before it, the operations added and removed
  (``METHOD /path``, path parameters written ``{}``) and the property names added and removed;
- ``versions``: per older version, what the emulator needs to answer in its shapes: the current
  operations it does not have, its operations the current spec does not have, the current
  property names it does not have (dropped from answers) and the renamed ones (RENAMES, each
  checked against the data: the old name in that version, the new one in the current spec).
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, 'batch_emulator', 'contract', 'spec', 'BatchService.json')
OUTPUT = os.path.join(ROOT, 'batch_emulator', 'contract', 'versions.json')
CURRENT = '2025-06-01'
# The azure-batch release that speaks each api-version, oldest first (each release's own api_version).
SDKS = (('2018-03-01.6.1', '4.1.3'), ('2018-08-01.7.0', '5.1.1'), ('2018-12-01.8.0', '6.0.1'),
        ('2019-06-01.9.0', '7.0.0'), ('2019-08-01.10.0', '8.0.0'), ('2020-03-01.11.0', '9.0.0'),
        ('2020-09-01.12.0', '10.0.0'), ('2021-06-01.14.0', '11.0.0'), ('2022-01-01.15.0', '12.0.0'),
        ('2022-10-01.16.0', '13.0.0'), ('2023-05-01.17.0', '14.0.0'), ('2023-11-01.18.0', '14.1.0'),
        ('2024-02-01.19.0', '14.2.0'), ('2024-07-01.20.0', '15.0.0b2'))
# Properties the service renamed (the same thing under a new wire name): (new name, old name, first version
# with the new name). ResourceFile's blobSource became httpUrl in 2018-12-01.8.0 (azure-batch 5.1.1, api
# 2018-08-01.7.0, still sends blobSource; 6.0.1, api 2018-12-01.8.0, sends httpUrl).
RENAMES = (('httpUrl', 'blobSource', '2018-12-01.8.0'),)
_PARAMETER = re.compile(r'\{[^}]*\}')
_METHODS = ('get', 'put', 'post', 'patch', 'delete', 'head')


def _operation(method: str, url: str) -> str:
    return f'{method.upper()} {_PARAMETER.sub("{}", url)}'


def read_msrest(package: str) -> tuple[set[str], set[str]]:
    """(operations, property names) of an msrest-generation azure-batch (4.x to 14.x)."""
    operations, names = set(), set()
    for path in glob.glob(os.path.join(package, 'azure', 'batch', 'operations', '*.py')):
        tree = ast.parse(open(path, encoding='utf-8').read())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            methods = {node.func.attr for node in ast.walk(function) if isinstance(node, ast.Call)
                       and isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS
                       and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == '_client'}
            url = _metadata_url(tree, function.name)
            if url and methods:
                operations.update(_operation(method, url) for method in methods)
    models = os.path.join(package, 'azure', 'batch', 'models')
    files = glob.glob(os.path.join(models, '*_py3.py')) or glob.glob(os.path.join(models, '*.py'))
    for path in files:
        for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
            if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == '_attribute_map'
                                                    for target in node.targets):
                for entry in ast.literal_eval(node.value).values():
                    if entry['key'] and not entry['key'].startswith('odata'):
                        names.add(entry['key'])
    return operations, names


def _metadata_url(tree: ast.Module, function: str) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute) \
                and node.targets[0].attr == 'metadata' and isinstance(node.targets[0].value, ast.Name) \
                and node.targets[0].value.id == function:
            return ast.literal_eval(node.value)['url']
    return None


def read_typespec(package: str) -> tuple[set[str], set[str]]:
    """(operations, property names) of a TypeSpec-generation azure-batch (15.x)."""
    operations, names = set(), set()
    source = open(os.path.join(package, 'azure', 'batch', '_operations', '_operations.py'), encoding='utf-8').read()
    for function in ast.walk(ast.parse(source)):
        if isinstance(function, ast.FunctionDef) and function.name.startswith('build_'):
            url = method = None
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                        and any(isinstance(t, ast.Name) and t.id == '_url' for t in node.targets):
                    url = node.value.value
                if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'HttpRequest':
                    method = next(k.value.value for k in node.keywords if k.arg == 'method')
            if url and method:
                operations.add(_operation(method, url))
    models = open(os.path.join(package, 'azure', 'batch', 'models', '_models.py'), encoding='utf-8').read()
    for node in ast.walk(ast.parse(models)):
        if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, 'id', None) == 'rest_field':
            name = next((k.value.value for k in node.value.keywords if k.arg == 'name'), node.target.id)
            names.add(name)
    return operations, names


def read_spec(path: str) -> tuple[set[str], set[str]]:
    spec = json.load(open(path, encoding='utf-8'))
    operations = {_operation(method, url) for url, item in spec['paths'].items() for method in item
                  if method in _METHODS}
    names = {name for definition in spec['definitions'].values() for name in definition.get('properties', {})
             if not name.startswith('odata')}
    return operations, names


def derive(sdks: str) -> dict:
    contracts = {}
    for version, release in SDKS:
        found = [folder for folder in glob.glob(os.path.join(sdks, '*'))
                 if re.search(rf'azure_batch-{re.escape(release)}-', os.path.basename(folder))]
        if not found:
            sys.exit(f'no unpacked azure-batch {release} under {sdks}')
        reader = read_typespec if release.startswith('15') else read_msrest
        contracts[version] = reader(found[0])
    contracts[CURRENT] = read_spec(SPEC)
    order = [version for version, _ in SDKS] + [CURRENT]
    changes = {}
    for older, newer in zip(order, order[1:], strict=False):
        (old_ops, old_names), (new_ops, new_names) = contracts[older], contracts[newer]
        changes[newer] = {'operations_added': sorted(new_ops - old_ops),
                          'operations_removed': sorted(old_ops - new_ops),
                          'properties_added': sorted(new_names - old_names),
                          'properties_removed': sorted(old_names - new_names)}
    current_ops, current_names = contracts[CURRENT]
    versions = {}
    for version in order[:-1]:
        ops, names = contracts[version]
        renamed = {}
        for new, old, since in RENAMES:
            if order.index(version) < order.index(since):
                assert old in names and new not in names and new in current_names, (version, new, old)
                renamed[new] = old
        versions[version] = {'operations_absent': sorted(current_ops - ops),
                             'operations_extra': sorted(ops - current_ops),
                             'properties_absent': sorted(current_names - names - set(renamed)), 'renamed': renamed}
    return {'derived_by': 'tools/derive_api_versions.py', 'current': CURRENT,
            'sources': {version: f'azure-batch {release}' for version, release in SDKS} | {CURRENT: 'spec'},
            'changes': changes, 'versions': versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--sdks', required=True, help='folder of unpacked azure-batch wheels')
    parser.add_argument('--check', action='store_true', help='fail if the committed table differs')
    args = parser.parse_args()
    text = json.dumps(derive(args.sdks), indent=1, sort_keys=False) + '\n'
    if args.check:
        with open(OUTPUT, encoding='utf-8') as file:
            sys.exit(0 if file.read() == text else 'batch_emulator/contract/versions.json differs from the derivation')
    with open(OUTPUT, 'w', encoding='utf-8') as file:
        file.write(text)
    print(f'{OUTPUT}: {len(text)} bytes')


if __name__ == '__main__':
    main()
