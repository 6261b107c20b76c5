"""A server that answers each addtaskcollection at once: the client's floor for adding tasks (bench_emulator.py).

    .venv/bin/python benchmarks/instant_answers.py    # prints its URL, serves until killed

It checks nothing and keeps nothing: each request's tasks are answered ``success`` with the body the service
writes (status, taskId, eTag, lastModified, location), so what a client spends against it is the client's own
time, the least any emulator can give it. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web


async def add_task_collection(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    base = f'http://{request.host}/jobs/{request.match_info["job"]}/tasks/'
    results = [{'status': 'success', 'taskId': task['id'], 'eTag': '0x8DE3312CA5B0F6C',
                'lastModified': '2026-12-03T21:40:11.123456Z', 'location': base + task['id']}
               for task in body['value']]
    return web.json_response({'odata.metadata': f'http://{request.host}/$metadata#taskaddresult', 'value': results},
                             content_type='application/json', headers={'request-id': '0'})


async def serve() -> None:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post('/jobs/{job}/addtaskcollection', add_task_collection)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    print(f'http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}', flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == '__main__':
    asyncio.run(serve())
