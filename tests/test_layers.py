"""The emulator's house: its layers are kept, no module imports itself round a loop, and each reads in one sitting.

The spec's operations' handlers never speak HTTP: they take a ``results.Context`` and return a result, and
``wire/adapter.py`` alone writes the answer.

The layers are declared in ``pyproject.toml`` (``[tool.importlinter]``: tools > app > portal > wire > runtime >
service > autoscale | contract > common) and checked by import-linter's own command, as a contributor runs it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys

import grimp

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_MODULE_LINES = 420  # "a file a reader can hold in their head (~400 lines)"
# The autoscale formula language may stand alone (its grammar and evaluator are one language).
LONG_MODULES_ALLOWED = {'batch_emulator/autoscale/formula.py'}


def test_lint_imports_keeps_the_layers() -> None:
    lint_imports = os.path.join(os.path.dirname(sys.executable), 'lint-imports')
    result = subprocess.run([lint_imports, '--no-cache'], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 kept, 0 broken' in result.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_of_the_emulator_imports_round_a_loop() -> None:
    # Imports inside functions count too; those under `if TYPE_CHECKING:` (a parameter's type) do not.
    graph = grimp.build_graph('batch_emulator', cache_dir=None, exclude_type_checking_imports=True)
    modules = {module for module in graph.modules if not graph.find_children(module)}  # modules, not packages
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_sees_a_loop() -> None:
    """The check above can fail: a graph with a loop through three modules is reported as one."""
    graph = grimp.ImportGraph()
    for importer, imported in (('p.a', 'p.b'), ('p.b', 'p.c'), ('p.c', 'p.a'), ('p.c', 'p.d')):
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph, {'p.a', 'p.b', 'p.c', 'p.d'}) == [['p.a', 'p.b', 'p.c']]


def test_every_module_reads_in_one_sitting() -> None:
    too_long = {}
    for folder, _, files in os.walk(os.path.join(PROJECT_DIR, 'batch_emulator')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, PROJECT_DIR)
                with open(path, encoding='utf-8') as file:
                    lines = sum(1 for _ in file)
                if lines > MAX_MODULE_LINES and relative not in LONG_MODULES_ALLOWED:
                    too_long[relative] = lines
    assert too_long == {}


# What only the HTTP side may use: aiohttp itself, the modules that write answers, and the request.
_HTTP_MODULES = ('aiohttp', 'batch_emulator.wire.server', 'batch_emulator.wire.respond', 'batch_emulator.wire.adapter')
_HTTP_NAMES = {'web', 'request', 'json_response', 'Response', 'StreamResponse', 'error_response', 'headers_of'}


def _speaks_http(source: str) -> list[str]:
    """What in a module's source imports the HTTP side or builds an answer."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or '']
            found += [f'imports {module}' for module in modules
                      if any(module == name or module.startswith(name + '.') for name in _HTTP_MODULES)]
        elif isinstance(node, ast.Name) and node.id in _HTTP_NAMES:
            found.append(f'uses {node.id} (line {node.lineno})')
        elif isinstance(node, ast.arg) and node.arg in _HTTP_NAMES:
            found.append(f'takes {node.arg} (line {node.lineno})')
    return found


def test_handlers_of_the_operations_never_speak_http() -> None:
    from batch_emulator.wire.routes import HANDLERS

    modules = sorted({handler.__module__ for handler in HANDLERS.values()})
    assert {f'batch_emulator.wire.{name}_routes' for name in ('pool', 'job', 'file', 'node', 'schedule')} <= \
        set(modules)
    speaking = {module: _speaks_http(inspect.getsource(importlib.import_module(module))) for module in modules}
    assert {module: found for module, found in speaking.items() if found} == {}
    for operation_id, handler in HANDLERS.items():
        assert list(inspect.signature(handler).parameters) == ['ctx'], operation_id


def test_the_http_check_sees_a_handler_that_builds_its_answer() -> None:
    source = ('from aiohttp import web\n'
              'from batch_emulator.wire.server import json_response\n'
              'async def get_pool(request):\n'
              '    return json_response(request, None, status=web.HTTPOk.status_code)\n')
    assert _speaks_http(source) == ['imports aiohttp', 'imports batch_emulator.wire.server', 'takes request (line 3)',
                                    'uses json_response (line 4)', 'uses request (line 4)', 'uses web (line 4)']


def test_the_rooms_are_composed_not_mixed() -> None:
    """Each room is an object on the account, connected to the rooms it calls: none inherits another's rules,
    and the account object is none of them."""
    from batch_emulator.service.room import Room
    from batch_emulator.service.state import BatchState
    state = BatchState('account', 'http://127.0.0.1:1', 'nodes')
    rooms = [value for value in vars(state).values() if isinstance(value, Room)]
    assert len(rooms) == 8  # pools, nodes, autoscale, jobs, tasks, dependencies, schedules, certificates
    assert not issubclass(BatchState, Room)  # it holds the rooms, it is none of them
    assert all(type(room).__bases__ == (Room,) for room in rooms)
    assert len({id(room.account) for room in rooms}) == 1  # one account's data, shared
    # what a room calls on another it reaches through the connection, never through itself
    methods = {type(room): {name for name in vars(type(room)) if callable(vars(type(room))[name])} for room in rooms}
    for room_type, own in methods.items():
        others = set().union(*(names for other, names in methods.items() if other is not room_type)) - own
        source = inspect.getsource(room_type)
        called = set(re.findall(r'\bself\.(\w+)\(', source))
        assert called & others - set(vars(Room)) == set(), room_type.__name__
