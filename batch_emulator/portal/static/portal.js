// The local Batch portal: polls the emulator's read-only JSON endpoints and redraws.
// Everything from the server is inserted as text (textContent), never as HTML.
'use strict';

const POLL_MS = 1000;

function el(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === 'onclick') element.addEventListener('click', value);
    else if (name === 'className') element.className = value;
    else element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function stateCell(state) {
  return el('td', {className: 'state state-' + String(state || '').toLowerCase(), 'data-state': state || ''}, state || '—');
}

function shortId(id) {
  return id && id.length > 24 ? id.slice(0, 14) + '…' + id.slice(-6) : id;
}

async function getJson(url) {
  const response = await fetch(url, {cache: 'no-store'});
  if (!response.ok) throw new Error(url + ': HTTP ' + response.status + ' ' + (await response.text()));
  return response.json();
}

async function showFile(label, url) {
  const name = document.getElementById('file-name');
  const view = document.getElementById('file-view');
  name.textContent = label + ' (loading…)';
  try {
    const file = await getJson(url);
    name.textContent = label + ' — ' + file.size + ' bytes' + (file.truncated ? ' (showing the end)' : '');
    view.textContent = file.text;
  } catch (error) {
    name.textContent = label;
    view.textContent = String(error.message);
  }
}

function fileButton(text, label, url) {
  return el('button', {className: 'link', type: 'button', 'data-file': label, onclick: () => showFile(label, url)}, text);
}

async function showFileList(title, listUrl, fileUrl, labelPrefix) {
  const name = document.getElementById('file-name');
  const view = document.getElementById('file-view');
  try {
    const listing = await getJson(listUrl);
    name.textContent = title;
    view.replaceChildren(...listing.files.map(path => el('div', {},
      fileButton(path, labelPrefix + path, fileUrl + '&path=' + encodeURIComponent(path)))));
  } catch (error) {
    view.textContent = String(error.message);
  }
}

function showTaskFiles(jobId, taskId) {
  const query = 'job=' + encodeURIComponent(jobId) + '&task=' + encodeURIComponent(taskId);
  return showFileList('Files of task ' + taskId + ' (' + jobId + ')', '/portal/api/task-files?' + query,
    '/portal/api/task-file?' + query, taskId + '/');
}

function showStartTaskFiles(poolId, nodeId) {
  const query = 'pool=' + encodeURIComponent(poolId) + '&node=' + encodeURIComponent(nodeId);
  return showFileList('Start task files on node ' + nodeId, '/portal/api/node-files?' + query,
    '/portal/api/node-file?' + query, nodeId + '/');
}

function renderPools(pools) {
  const container = document.getElementById('pools');
  if (!pools.length) { container.replaceChildren(el('p', {className: 'muted'}, 'No pools yet.')); return; }
  container.replaceChildren(...pools.map(pool => {
    const rows = pool.nodes.map(node => {
      const start = node.startTask;
      const query = 'pool=' + encodeURIComponent(pool.id) + '&node=' + encodeURIComponent(node.id);
      const links = node.hasStartTask ? [
        fileButton('stdout.txt', 'start task stdout.txt on ' + node.id, '/portal/api/node-file?' + query + '&path=startup/stdout.txt'),
        fileButton('stderr.txt', 'start task stderr.txt on ' + node.id, '/portal/api/node-file?' + query + '&path=startup/stderr.txt'),
        el('button', {className: 'link', type: 'button', onclick: () => showStartTaskFiles(pool.id, node.id)}, 'files'),
      ] : ['no start task'];
      return el('tr', {'data-node-id': node.id},
        el('td', {title: node.id}, shortId(node.id)), stateCell(node.state),
        el('td', {}, start ? (start.state + (start.result ? ' / ' + start.result : '') +
          (start.exitCode !== null && start.exitCode !== undefined ? ' (exit ' + start.exitCode + ')' : '')) : '—'),
        el('td', {}, node.runningTasks), el('td', {}, node.totalTasksRun), el('td', {}, ...links));
    });
    return el('div', {'data-pool-id': pool.id},
      el('h3', {}, 'Pool ' + pool.id + ' — ', el('span', {className: 'state state-' + pool.state}, pool.state),
        ', allocation ', el('span', {className: 'state state-' + pool.allocationState, 'data-allocation': pool.allocationState},
          pool.allocationState),
        ', ' + pool.current + ' of ' + pool.target + ' nodes, ' + pool.vmSize + ', ' + pool.slotsPerNode + ' slot(s) per node'),
      el('table', {className: 'nodes'},
        el('thead', {}, el('tr', {}, ...['node', 'state', 'start task', 'running', 'tasks run', 'start task files'].map(h => el('th', {}, h)))),
        el('tbody', {}, ...rows)));
  }));
}

function renderJobs(jobs) {
  const container = document.getElementById('jobs');
  if (!jobs.length) { container.replaceChildren(el('p', {className: 'muted'}, 'No jobs yet.')); return; }
  container.replaceChildren(...jobs.map(job => {
    const counts = job.counts;
    const rows = job.tasks.map(task => {
      const query = 'job=' + encodeURIComponent(job.id) + '&task=' + encodeURIComponent(task.id);
      const links = task.hasFiles ? [
        fileButton('stdout.txt', task.id + '/stdout.txt', '/portal/api/task-file?' + query + '&path=stdout.txt'),
        fileButton('stderr.txt', task.id + '/stderr.txt', '/portal/api/task-file?' + query + '&path=stderr.txt'),
        el('button', {className: 'link', type: 'button', onclick: () => showTaskFiles(job.id, task.id)}, 'files'),
      ] : ['—'];
      const exit = task.exitCode === null || task.exitCode === undefined ? '—' : task.exitCode;
      return el('tr', {'data-task-id': task.id, title: task.commandLine || ''},
        el('td', {}, task.id), stateCell(task.state),
        el('td', {title: task.nodeId || ''}, shortId(task.nodeId) || '—'),
        el('td', {'data-exit-code': String(exit)}, exit + (task.failure ? ' (' + task.failure + ')' : '')),
        el('td', {}, task.duration === null ? '—' : task.duration.toFixed(2) + ' s'),
        el('td', {}, task.retryCount + (task.requeueCount ? ' / requeued ' + task.requeueCount : '')),
        el('td', {}, ...links));
    });
    const more = job.taskCount > job.tasks.length ? el('p', {className: 'muted'},
      'Showing ' + job.tasks.length + ' of ' + job.taskCount + ' tasks (running and waiting first, then the latest completed).') : null;
    return el('div', {'data-job-id': job.id},
      el('h3', {}, 'Job ' + job.id + ' on pool ' + job.poolId + ' — ', el('span', {className: 'state state-' + job.state}, job.state)),
      el('p', {className: 'counts'}, ...['active', 'running', 'completed', 'succeeded', 'failed'].map(name =>
        el('span', {'data-count': name}, name + ': ' + counts[name]))),
      el('table', {className: 'tasks'},
        el('thead', {}, el('tr', {}, ...['task', 'state', 'node', 'exit code', 'duration', 'retries', 'files'].map(h => el('th', {}, h)))),
        el('tbody', {}, ...rows)),
      more);
  }));
}

function renderStorage(storage) {
  const container = document.getElementById('storage');
  if (!storage.connected) {
    container.replaceChildren(el('p', {className: 'muted'}, storage.error ||
      'Not connected to a storage account (start the emulator with --storage-connection-string).'));
    return;
  }
  if (!storage.containers.length) { container.replaceChildren(el('p', {className: 'muted'}, 'No containers.')); return; }
  container.replaceChildren(...storage.containers.map(item => el('div', {'data-container': item.name},
    el('h3', {}, 'Container ' + item.name + ' (' + item.blobs.length + ' blobs)'),
    el('table', {}, el('tbody', {}, ...item.blobs.map(blob =>
      el('tr', {}, el('td', {className: 'wrap'}, blob.name), el('td', {}, blob.size + ' B'))))))));
}

function renderRequests(entries) {
  const body = document.querySelector('#requests tbody');
  body.replaceChildren(...entries.map(entry => el('tr', {},
    el('td', {}, entry.time), el('td', {}, entry.method), el('td', {className: 'wrap'}, entry.path),
    el('td', {className: 'wrap'}, Object.entries(entry.query).filter(([key]) => key !== 'api-version')
      .map(([key, value]) => key + '=' + value).join('&')),
    el('td', {}, entry.status), el('td', {}, entry.ms))));
}

async function refreshBatch() {
  try {
    const overview = await getJson('/portal/api/overview');
    document.getElementById('account').textContent = 'account ' + overview.account + ' at ' + overview.endpoint;
    renderPools(overview.pools);
    renderJobs(overview.jobs);
    renderRequests((await getJson('/portal/api/requests')).requests);
    document.getElementById('status').textContent = '';
  } catch (error) {
    document.getElementById('status').textContent = 'The emulator is not answering (' + error.message + ').';
  }
}

async function refreshStorage() {
  try { renderStorage(await getJson('/portal/api/storage')); } catch (error) { /* shown by refreshBatch */ }
}

function loop(action, interval) {
  action().finally(() => setTimeout(() => loop(action, interval), interval));
}

loop(refreshBatch, POLL_MS);
loop(refreshStorage, 2 * POLL_MS);
