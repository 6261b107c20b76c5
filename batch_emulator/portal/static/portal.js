// The local Batch portal: polls the emulator's read-only JSON endpoints and redraws what changed.
// Everything from the server is inserted as text (textContent), never as HTML. The pictures (node
// heatmap, task timeline, counts chart) are drawn with plain DOM, canvas and SVG: no library, no CDN.
'use strict';

const POLL_MS = 1000;
const ROW_HEIGHT = 26;  // px, as .task-row in portal.css: the task list draws only the rows in view
const SVG = 'http://www.w3.org/2000/svg';
const ID_ORDER = new Intl.Collator('en', {numeric: true});
const TASK_LABELS = {active: '◷ active', preparing: '◔ preparing', running: '▶ running', completed: '✓ completed'};
const COLOURS = {queued: '#6e7781', prep: '#9a6700', run: '#0969da', ok: '#1a7f37', bad: '#cf222e'};

// What the page knows. Tasks arrive as changes since the previous answer (its token) and are merged here.
const store = {
  token: '', account: '', pools: [], jobs: new Map(), selectedJob: null, chosenByUser: false,
  pickedTask: null, pickedNode: null, requestToken: '', requests: [], currentStep: null, selectedRequest: null,
  storage: null,
};
// Measured by the page itself (performance.now() around each update): the benchmark and tests read it.
window.portalStats = {updates: 0, lastMs: 0, maxMs: 0, totalMs: 0, tasksKnown: 0, lastTasksReceived: 0, samples: []};

function el(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'onclick') element.addEventListener('click', value);
    else if (name === 'className') element.className = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  return element;
}

function shortId(id) {
  return id && id.length > 24 ? id.slice(0, 12) + '…' + id.slice(-8) : id;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

function seconds(ms) {
  return ms < 60000 ? (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s' : Math.floor(ms / 60000) + ' min ' + Math.round(ms % 60000 / 1000) + ' s';
}

async function getJson(url) {
  const response = await fetch(url, {cache: 'no-store'});
  if (!response.ok) throw new Error(url.split('?')[0] + ': HTTP ' + response.status + ' ' + (await response.text()));
  return response.json();
}

// ---------------------------------------------------------------- tabs and the file viewer

function showTab(name) {
  for (const tab of ['requests', 'file', 'storage']) {
    document.getElementById('tab-' + tab).setAttribute('aria-selected', String(tab === name));
    document.getElementById(tab + '-panel').hidden = tab !== name;
  }
  document.getElementById(name + '-panel').scrollIntoView({block: 'nearest'});  // narrow windows: one column
}

async function showFile(label, url) {
  showTab('file');
  const name = document.getElementById('file-name');
  const view = document.getElementById('file-view');
  name.textContent = label + ' (loading…)';
  view.textContent = '';
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
  showTab('file');
  const name = document.getElementById('file-name');
  const view = document.getElementById('file-view');
  name.textContent = title + ' (loading…)';
  try {
    const listing = await getJson(listUrl);
    name.textContent = title;
    view.replaceChildren(...listing.files.map(path => el('div', {},
      fileButton(path, labelPrefix + path, fileUrl + '&path=' + encodeURIComponent(path)))));
  } catch (error) {
    view.textContent = String(error.message);
  }
}

function taskFileButtons(jobId, task) {
  if (!task.hasFiles) return ['—'];
  const query = 'job=' + encodeURIComponent(jobId) + '&task=' + encodeURIComponent(task.id);
  return [
    fileButton('stdout.txt', task.id + '/stdout.txt', '/portal/api/task-file?' + query + '&path=stdout.txt'),
    fileButton('stderr.txt', task.id + '/stderr.txt', '/portal/api/task-file?' + query + '&path=stderr.txt'),
    el('button', {className: 'link', type: 'button', 'data-files': task.id, onclick: () => showFileList(
      'Files of task ' + task.id + ' (' + jobId + ')', '/portal/api/task-files?' + query, '/portal/api/task-file?' + query,
      task.id + '/')}, 'files'),
  ];
}

// ---------------------------------------------------------------- merging the server's changes

function countsAgree(job, counts) {
  let active = 0, running = 0, completed = 0;
  for (const task of job.order) {
    if (task.state === 'active') active += 1;
    else if (task.state === 'completed') completed += 1;
    else running += 1;  // preparing counts as running, as in the service's task counts
  }
  return active === counts.active && running === counts.running && completed === counts.completed;
}

function applyOverview(overview) {
  store.account = 'account ' + overview.account + ' at ' + overview.endpoint;
  store.pools = overview.pools;
  store.now = overview.now;
  let received = 0;
  let resync = false;
  const seen = new Set();
  for (const row of overview.jobs) {
    seen.add(row.id);
    let job = store.jobs.get(row.id);
    if (!job || job.generation !== row.generation || overview.full) {
      job = {tasks: new Map(), order: [], version: 0, generation: row.generation};
      store.jobs.set(row.id, job);
    }
    job.info = row;
    let added = false;
    for (const task of row.tasks) {
      const known = job.tasks.get(task.id);
      job.tasks.set(task.id, task);
      if (known) job.order[known.index] = task;
      else { job.order.push(task); added = true; }
      task.index = known ? known.index : job.order.length - 1;
    }
    if (added) {  // the list's order: by id, its numbers compared as numbers (topNtask2 before topNtask10)
      job.order.sort((a, b) => ID_ORDER.compare(a.id, b.id));
      job.order.forEach((task, index) => { task.index = index; });
    }
    received += row.tasks.length;
    if (row.tasks.length || job.version === 0) job.version += 1;
    // A task deleted, or a change missed (the emulator's clock stepped back): ask for everything once.
    // (After a full answer the page takes what it got, so a disagreement cannot make it reload every second.)
    if (!overview.full && (job.tasks.size !== row.taskCount || !countsAgree(job, row.counts))) resync = true;
  }
  for (const id of [...store.jobs.keys()]) if (!seen.has(id)) store.jobs.delete(id);
  store.token = resync ? '' : overview.token;
  window.portalStats.lastTasksReceived = received;
  window.portalStats.tasksKnown = [...store.jobs.values()].reduce((sum, job) => sum + job.tasks.size, 0);
  if (!store.chosenByUser || !store.jobs.has(store.selectedJob)) {
    const newest = [...store.jobs.values()].sort((a, b) => b.info.created - a.info.created)[0];
    store.selectedJob = newest ? newest.info.id : null;
  }
}

// ---------------------------------------------------------------- pools: the node heatmap

const NODE_STATE_TEXT = {idle: 'idle', running: 'running', starting: 'starting', creating: 'creating',
  waitingforstarttask: 'waiting for start task', starttaskfailed: 'start task failed', unusable: 'unusable',
  rebooting: 'rebooting', reimaging: 'reimaging', leavingpool: 'leaving pool', offline: 'offline', preempted: 'preempted'};

const NODE_STATE_SHORT = {idle: 'idle', running: 'run', starting: 'start', creating: 'new', waitingforstarttask: 'wait',
  starttaskfailed: 'FAIL', unusable: 'BAD', rebooting: 'boot', reimaging: 'reimg', leavingpool: 'leave', offline: 'off', preempted: 'pre'};

function renderPools() {
  const container = document.getElementById('pools');
  if (!store.pools.length) { container.replaceChildren(el('p', {className: 'muted'}, 'No pools yet.')); return; }
  container.replaceChildren(...store.pools.map(pool => {
    const tally = {};
    for (const node of pool.nodes) tally[node.state] = (tally[node.state] || 0) + 1;
    const compact = pool.nodes.length > 12;  // 50 nodes: small cells, short labels (the legend says them in full)
    const cells = pool.nodes.map((node, index) => {
      const used = node.runningSlots || 0;
      const start = node.startTask;
      const startText = start ? 'start task ' + start.state + (start.result ? ' / ' + start.result : '') +
        (start.exitCode !== null && start.exitCode !== undefined ? ' (exit ' + start.exitCode + ')' : '') : 'no start task';
      const selected = store.pickedNode && store.pickedNode.node === node.id && store.pickedNode.pool === pool.id;
      return el('button', {
        type: 'button', className: 'node-cell node-' + node.state + (selected ? ' selected' : ''), 'data-node-id': node.id,
        'data-state': node.state, title: node.id + '\n' + startText + '\n' + node.totalTasksRun + ' tasks run\nclick: its tasks and start task files',
        onclick: () => pickNode(pool, node),
      },
      el('span', {}, (compact ? 'n' : 'node ') + (index + 1)),
      el('span', {className: 'node-state'}, compact ? NODE_STATE_SHORT[node.state] || node.state : NODE_STATE_TEXT[node.state] || node.state),
      el('span', {'data-slots': used + '/' + pool.slotsPerNode}, used + '/' + pool.slotsPerNode + (compact ? '' : ' slots')),
      el('div', {className: 'slots'}, el('i', {})));
    });
    // Slot bars: widths set through the CSSOM (a style attribute would be refused by the page's CSP).
    cells.forEach((cell, index) => {
      const node = pool.nodes[index];
      cell.querySelector('.slots i').style.width = Math.round(100 * (node.runningSlots || 0) / pool.slotsPerNode) + '%';
    });
    const summary = Object.entries(tally).map(([state, count]) => count + ' ' + (NODE_STATE_TEXT[state] || state)).join(' · ');
    const picked = store.pickedNode && store.pickedNode.pool === pool.id ? nodeDetail(pool) : null;
    return el('div', {'data-pool-id': pool.id},
      el('p', {className: 'pool-head'}, el('strong', {}, 'Pool ' + pool.id), ' — ' + pool.state + ', allocation ',
        el('span', {'data-allocation': pool.allocationState}, pool.allocationState),
        ', ' + pool.current + ' of ' + pool.target + ' nodes, ' + pool.vmSize + ', ' + pool.slotsPerNode + ' slot(s) per node' +
        (summary ? ': ' + summary : '')),
      el('div', {className: 'heatmap' + (compact ? ' compact' : ''), role: 'list'}, ...cells),
      compact ? el('p', {className: 'legend'}, ...Object.entries(NODE_STATE_SHORT).filter(([state, short]) => tally[state] && short !== NODE_STATE_TEXT[state]).map(([state, short]) =>
        el('span', {}, short + ' = ' + NODE_STATE_TEXT[state]))) : null, picked);
  }));
}

function nodeDetail(pool) {
  const node = pool.nodes.find(item => item.id === store.pickedNode.node);
  if (!node) return null;
  const query = 'pool=' + encodeURIComponent(pool.id) + '&node=' + encodeURIComponent(node.id);
  const links = pool.hasStartTask ? [
    fileButton('start task stdout.txt', 'start task stdout.txt on ' + node.id, '/portal/api/node-file?' + query + '&path=startup/stdout.txt'),
    fileButton('start task stderr.txt', 'start task stderr.txt on ' + node.id, '/portal/api/node-file?' + query + '&path=startup/stderr.txt'),
    el('button', {className: 'link', type: 'button', 'data-start-task-files': node.id, onclick: () => showFileList(
      'Start task files on node ' + node.id, '/portal/api/node-files?' + query, '/portal/api/node-file?' + query, node.id + '/')},
    'start task files'),
  ] : ['no start task'];
  return el('p', {className: 'node-files', 'data-picked-node': node.id}, el('span', {title: node.id}, 'Node ' + shortId(node.id) + ':'), ...links,
    el('span', {className: 'muted'}, '(its tasks are filtered below)'));
}

function pickNode(pool, node) {
  const same = store.pickedNode && store.pickedNode.node === node.id;
  store.pickedNode = same ? null : {pool: pool.id, node: node.id};
  document.getElementById('filter-node').value = same ? '' : node.id;
  filtersChanged();
  renderPools();
}

// ---------------------------------------------------------------- jobs

function renderJobs() {
  const container = document.getElementById('jobs');
  document.getElementById('job-pictures').hidden = !store.selectedJob;
  if (!store.jobs.size) { container.replaceChildren(el('p', {className: 'muted'}, 'No jobs yet.')); return; }
  const jobs = [...store.jobs.values()].sort((a, b) => b.info.created - a.info.created);
  const rows = jobs.map(job => {
    const counts = job.info.counts;
    return el('tr', {className: job.info.id === store.selectedJob ? 'selected' : '', 'data-job-id': job.info.id,
      onclick: () => { store.selectedJob = job.info.id; store.chosenByUser = true; renderAll(true); }},
    el('td', {title: job.info.id}, job.info.id), el('td', {title: job.info.poolId}, job.info.poolId), el('td', {}, job.info.state),
    ...['active', 'running', 'completed', 'succeeded', 'failed'].map(name =>
      el('td', {'data-count': name, className: name === 'failed' && counts[name] ? 'text-bad' : ''}, counts[name])));
  });
  container.replaceChildren(...[el('table', {className: 'jobs'},
    el('thead', {}, el('tr', {}, ...['job', 'pool', 'state', 'active', 'running', 'completed', 'succeeded', 'failed'].map(h =>
      el('th', {}, h)))), el('tbody', {}, ...rows.slice(0, 8))),
  jobs.length > 8 ? el('p', {className: 'muted'}, jobs.length + ' jobs: the newest 8 are listed.') : null].filter(Boolean));
}

function selectedJob() {
  return store.selectedJob ? store.jobs.get(store.selectedJob) : null;
}

// ---------------------------------------------------------------- the timeline (canvas)

const timeline = {bars: null, count: 0, labelWidth: 96};

function taskColour(task) {
  if (task.state === 'completed') return task.result === 'failure' ? COLOURS.bad : COLOURS.ok;
  return task.state === 'preparing' ? COLOURS.prep : COLOURS.run;
}

function renderTimeline(job, now) {
  const canvas = document.getElementById('timeline');
  const pool = store.pools.find(item => item.id === job.info.poolId);
  const lanes = new Map();  // node id -> tasks that ran there
  for (const node of pool ? pool.nodes : []) lanes.set(node.id, []);
  let first = Infinity;
  let last = job.info.created;
  for (const task of job.tasks.values()) {
    if (!task.start || !task.nodeId) continue;
    if (!lanes.has(task.nodeId)) lanes.set(task.nodeId, []);
    lanes.get(task.nodeId).push(task);
    first = Math.min(first, task.start);
    last = Math.max(last, task.end || now);
  }
  const ids = [...lanes.keys()];
  const width = Math.max(200, canvas.parentElement.clientWidth);
  const laneHeight = Math.max(4, Math.min(22, Math.floor(240 / Math.max(1, ids.length))));
  const axis = 18;
  const height = Math.max(60, ids.length * laneHeight + axis);
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = height + 'px';
  }
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.font = '10px system-ui, sans-serif';
  context.textBaseline = 'middle';
  const left = timeline.labelWidth;
  const plot = width - left - 4;
  if (first === Infinity) {
    context.fillStyle = '#57606a';
    context.fillText(ids.length ? 'No task has started yet.' : 'No nodes yet.', left, height / 2);
    timeline.count = 0;
    canvas.dataset.bars = '0';
    return;
  }
  const span = Math.max(1000, last - first);
  const x = moment => left + (moment - first) / span * plot;
  const bars = timeline.bars && timeline.bars.length >= job.tasks.size * 5 ? timeline.bars : new Float64Array(job.tasks.size * 5 + 5);
  const picked = [];
  const barTasks = [];
  let count = 0;
  ids.forEach((nodeId, lane) => {
    const top = lane * laneHeight;
    context.fillStyle = lane % 2 ? '#f6f8fa' : '#ffffff';
    context.fillRect(left, top, plot, laneHeight);
    if (laneHeight >= 9) {
      context.fillStyle = '#57606a';
      context.fillText('node ' + (lane + 1), 4, top + laneHeight / 2);
    }
    // Tasks of a node with several slots overlap: each goes into the first row free at its start.
    const tasks = lanes.get(nodeId).sort((a, b) => a.start - b.start);
    const rowEnds = [];
    for (const task of tasks) {
      let row = rowEnds.findIndex(end => end <= task.start);
      if (row === -1) { row = rowEnds.length; rowEnds.push(0); }
      rowEnds[row] = task.end || now;
    }
    const rows = Math.max(1, rowEnds.length);
    rowEnds.length = 0;
    for (const task of tasks) {
      let row = rowEnds.findIndex(end => end <= task.start);
      if (row === -1) { row = rowEnds.length; rowEnds.push(0); }
      rowEnds[row] = task.end || now;
      const barTop = top + 1 + row * (laneHeight - 2) / rows;
      const barHeight = Math.max(1, (laneHeight - 2) / rows - (rows > 1 ? 0.5 : 0));
      const x0 = x(task.start);
      const barWidth = Math.max(2, x(task.end || now) - x0);
      context.fillStyle = taskColour(task);
      context.fillRect(x0, barTop, barWidth, barHeight);
      if (task.id === store.pickedTask) picked.push([x0, barTop, barWidth, barHeight]);
      bars.set([x0, barTop, barWidth, barHeight, count], count * 5);
      barTasks.push(task);
      count += 1;
    }
  });
  context.strokeStyle = '#ffb000';
  context.lineWidth = 2;
  for (const [x0, y0, w, h] of picked) context.strokeRect(x0 - 1, y0 - 1, w + 2, h + 2);
  const bottom = ids.length * laneHeight;
  context.fillStyle = '#57606a';
  context.fillRect(left, bottom, plot, 1);
  context.textBaseline = 'top';
  context.fillText(clockTime(first), left, bottom + 4);
  const endText = (job.info.counts.active + job.info.counts.running ? 'now ' : '') + clockTime(last) + ' (' + seconds(last - first) + ')';
  context.fillText(endText, left + plot - context.measureText(endText).width, bottom + 4);
  timeline.bars = bars;
  timeline.tasks = barTasks;
  timeline.count = count;
  canvas.dataset.bars = String(count);
  canvas.dataset.lanes = String(ids.length);
}

function timelineClick(event) {
  const canvas = document.getElementById('timeline');
  const box = canvas.getBoundingClientRect();
  const px = event.clientX - box.left;
  const py = event.clientY - box.top;
  let best = -1;
  let bestDistance = 6;  // px: a thin bar can be picked from nearby
  for (let index = 0; index < timeline.count; index += 1) {
    const [x0, y0, w, h] = timeline.bars.subarray(index * 5, index * 5 + 4);
    if (py < y0 - 2 || py > y0 + h + 2) continue;
    const distance = px < x0 ? x0 - px : px > x0 + w ? px - x0 - w : 0;
    if (distance < bestDistance) { bestDistance = distance; best = index; }
  }
  if (best >= 0) pickTask(timeline.tasks[best]);
}

function pickTask(task) {
  store.pickedTask = task.id;
  const job = selectedJob();
  const duration = task.start ? seconds((task.end || Date.now()) - task.start) : 'not started';
  document.getElementById('timeline-picked').textContent = 'Task ' + task.id + ' on node ' + (shortId(task.nodeId) || '—') + ': ' +
    (task.state === 'completed' ? (task.result === 'failure' ? 'failed' : 'succeeded') + ', exit code ' + task.exitCode : task.state) +
    ', ' + duration + '. It is highlighted in the task list.';
  document.getElementById('filter-search').value = '';
  filtersChanged();
  const index = taskList.filtered.indexOf(task);
  if (index >= 0) document.getElementById('task-viewport').scrollTop = Math.max(0, index * ROW_HEIGHT - ROW_HEIGHT * 2);
  renderAll(true);
}

function renderTimelineLegend() {
  const items = [['running', COLOURS.run], ['preparing', COLOURS.prep], ['succeeded', COLOURS.ok], ['failed', COLOURS.bad]];
  const swatches = items.map(([name, colour]) => {
    const swatch = el('span', {className: 'swatch'});
    swatch.style.background = colour;
    return el('span', {}, swatch, name);
  });
  document.getElementById('timeline-legend').replaceChildren(...swatches);
}

// ---------------------------------------------------------------- task counts over time (SVG)

function renderCountsChart(job, now) {
  const chart = document.getElementById('counts-chart');
  const width = Math.max(160, chart.clientWidth || 300);
  const height = 120;
  const bins = Math.min(160, Math.max(20, Math.floor(width / 3)));
  const start = job.info.created;
  const end = Math.max(start + 1000, now);
  const step = (end - start) / bins;
  // Differences per bin, then running sums: O(tasks + bins). A task is active from its creation to its
  // start, running to its end, completed after (its latest run: a retried task's earlier runs are not shown).
  const active = new Float64Array(bins + 2);
  const running = new Float64Array(bins + 2);
  const completed = new Float64Array(bins + 2);
  const bin = moment => Math.min(bins + 1, Math.max(0, Math.ceil((moment - start) / step)));
  for (const task of job.tasks.values()) {
    const created = bin(task.created);
    const started = task.start ? bin(task.start) : bins + 1;
    const ended = task.end ? bin(task.end) : bins + 1;
    active[created] += 1; active[started] -= 1;
    if (task.start) { running[started] += 1; running[ended] -= 1; }
    if (task.end) completed[ended] += 1;
  }
  const series = [active, running, completed].map(diff => {
    const values = new Float64Array(bins + 1);
    let sum = 0;
    for (let index = 0; index <= bins; index += 1) { sum += diff[index]; values[index] = sum; }
    return values;
  });
  const total = Math.max(1, job.tasks.size);
  const left = 34;
  const plotWidth = width - left - 4;
  const plotHeight = height - 18;
  const points = values => Array.from(values, (value, index) =>
    (left + index / bins * plotWidth).toFixed(1) + ',' + (plotHeight - value / total * (plotHeight - 4)).toFixed(1)).join(' ');
  chart.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  const names = [['active (queued)', COLOURS.queued, '4 3'], ['running', COLOURS.run, ''], ['completed', COLOURS.ok, '']];
  const lines = series.map((values, index) => svg('polyline', {points: points(values), fill: 'none', stroke: names[index][1],
    'stroke-width': 2, 'stroke-dasharray': names[index][2], 'data-series': names[index][0].split(' ')[0]}));
  const label = (text, x, y, anchor) => { const item = svg('text', {x, y, 'text-anchor': anchor || 'start'}); item.textContent = text; return item; };
  chart.replaceChildren(
    svg('line', {x1: left, y1: plotHeight, x2: left + plotWidth, y2: plotHeight, stroke: '#d0d7de'}),
    label(String(total), left - 4, 8, 'end'), label('0', left - 4, plotHeight, 'end'),
    label(clockTime(start), left, height - 4), label(clockTime(end), left + plotWidth, height - 4, 'end'), ...lines);
  const latest = series.map(values => values[bins]);
  document.getElementById('counts-legend').replaceChildren(...names.map(([name, colour], index) => {
    const swatch = el('span', {className: 'swatch'});
    swatch.style.background = colour;
    return el('span', {'data-legend': name.split(' ')[0]}, swatch, name + ': ' + latest[index]);
  }));
}

// ---------------------------------------------------------------- the task list (virtualised)

const taskList = {filtered: [], version: -1, job: null, filters: ''};

function filtersChanged() {
  taskList.version = -1;
  renderTaskRows(true);
}

function currentFilters() {
  return [document.getElementById('filter-state').value, document.getElementById('filter-node').value,
    document.getElementById('filter-failed').checked, document.getElementById('filter-search').value.trim().toLowerCase()];
}

function refilter(job) {
  const [state, node, failedOnly, search] = currentFilters();
  const key = JSON.stringify([state, node, failedOnly, search]);
  if (taskList.job === job.info.id && taskList.version === job.version && taskList.filters === key) return false;
  const filtered = [];
  for (const task of job.order) {
    if (state && task.state !== state) continue;
    if (node && task.nodeId !== node) continue;
    if (failedOnly && task.result !== 'failure') continue;
    if (search && !task.id.toLowerCase().includes(search)) continue;
    filtered.push(task);
  }
  Object.assign(taskList, {filtered, job: job.info.id, version: job.version, filters: key});
  document.getElementById('task-spacer').style.height = filtered.length * ROW_HEIGHT + 'px';
  document.getElementById('tasks-shown').textContent = filtered.length + ' of ' + job.tasks.size + ' tasks';
  return true;
}

function taskBadge(task) {
  const failed = task.state === 'completed' && task.result === 'failure';
  const label = task.state === 'completed' ? (failed ? '✗ failed' : '✓ succeeded') : (TASK_LABELS[task.state] || task.state);
  const kind = task.state === 'completed' ? (failed ? 'failure' : 'success') : task.state;
  return el('span', {className: 'badge badge-' + kind, 'data-state': task.state, title: 'state: ' + task.state +
    (task.result ? ', result: ' + task.result : '')}, label);
}

function taskRow(jobId, task, now) {
  const exit = task.exitCode === null || task.exitCode === undefined ? '—' : task.exitCode;
  const duration = task.start ? seconds((task.end || now) - task.start) : '—';
  return el('div', {className: 'task-row' + (task.id === store.pickedTask ? ' picked' : ''), 'data-task-id': task.id, title: task.commandLine || ''},
    el('span', {title: task.id}, task.id), el('span', {}, taskBadge(task)),
    el('span', {title: task.nodeId || ''}, shortId(task.nodeId) || '—'),
    el('span', {'data-exit-code': String(exit), title: task.failure || ''}, String(exit) + (task.failure ? ' · ' + task.failure : '')),
    el('span', {}, duration),
    el('span', {}, task.retryCount + (task.requeueCount ? ' / ' + task.requeueCount + ' requeued' : '')),
    el('span', {}, ...taskFileButtons(jobId, task)));
}

const taskView = {first: -1, count: -1, version: -1};

function renderTaskRows(force) {
  const job = selectedJob();
  const rows = document.getElementById('task-rows');
  if (!job) { rows.replaceChildren(); return; }
  const changed = refilter(job);
  const viewport = document.getElementById('task-viewport');
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - 5);
  const count = Math.ceil(viewport.clientHeight / ROW_HEIGHT) + 10;
  const running = taskList.filtered.slice(first, first + count).some(task => task.state === 'running');
  if (!force && !changed && !running && first === taskView.first && count === taskView.count) return;
  Object.assign(taskView, {first, count});
  rows.style.top = first * ROW_HEIGHT + 'px';
  const now = Date.now();
  rows.replaceChildren(...taskList.filtered.slice(first, first + count).map(task => taskRow(job.info.id, task, now)));
}

function renderNodeFilter(job) {
  const select = document.getElementById('filter-node');
  const pool = store.pools.find(item => item.id === job.info.poolId);
  const ids = pool ? pool.nodes.map(node => node.id) : [];
  const key = ids.join(',');
  if (select.dataset.key === key) return;
  const value = select.value;
  select.dataset.key = key;
  select.replaceChildren(el('option', {value: ''}, 'all'), ...ids.map((id, index) => el('option', {value: id}, 'node ' + (index + 1) + ' (' + shortId(id) + ')')));
  select.value = ids.includes(value) ? value : '';
}

// ---------------------------------------------------------------- the request log

const STEPS = {
  3: 'Step 3 · create the pool', 4: 'Step 4 · create the job', 5: 'Step 5 · add the tasks',
  6: 'Step 6 · monitor the tasks', 9: 'Step 9 · delete the job and the pool',
};
// The operations that show which step is running (the client's steps run in order); any other request
// belongs to the step that was running when it was made.
const STEP_MARKERS = {
  Pools_ListSupportedImages: 3, Pools_CreatePool: 3, Jobs_CreateJob: 4, Tasks_CreateTaskCollection: 5,
  Tasks_CreateTask: 5, Jobs_GetJobTaskCounts: 6, Jobs_DeleteJob: 9, Pools_DeletePool: 9,
};

function resourceOf(entry) {
  const prefix = (entry.operation || '').split('_')[0];
  return {Pools: 'pool', Nodes: 'node', Jobs: 'job', JobSchedules: 'job', Tasks: 'task'}[prefix] || 'other';
}

function assignStep(entry) {
  const marker = STEP_MARKERS[entry.operation];
  if (marker !== undefined) {
    const previous = store.requests[store.requests.length - 1];
    // The client reads a job or pool just before deleting it (was it made by this run?): same step.
    if (previous && previous.method === 'GET' && previous.path === entry.path && previous.step !== marker) {
      previous.step = marker;
      previous.stepMarker = entry.operation;
    }
    store.currentStep = marker;
    entry.stepMarker = entry.operation;
  }
  entry.step = store.currentStep;
  entry.resource = resourceOf(entry);
}

function applyRequests(answer) {
  if (answer.full) { store.requests = []; store.currentStep = null; }
  for (const entry of answer.requests) { assignStep(entry); store.requests.push(entry); }
  if (store.requests.length > 1000) store.requests.splice(0, store.requests.length - 1000);
  store.requestToken = answer.token;
  return answer.requests.length > 0 || answer.full;
}

function statusCell(status) {
  return el('td', {className: status < 400 ? 'text-ok' : 'text-bad', title: status < 400 ? 'success' : 'error'},
    String(status) + (status < 400 ? ' ✓' : ' ✗'));
}

function renderRequests() {
  const resource = document.getElementById('filter-resource').value;
  const grouped = document.getElementById('group-steps').checked;
  const shown = store.requests.filter(entry => !resource || entry.resource === resource);
  const rows = [];
  let group;
  for (let index = shown.length - 1; index >= 0; index -= 1) {
    const entry = shown[index];
    if (grouped && entry.step !== group) {
      group = entry.step;
      const title = group ? STEPS[group] + ' — inferred from the operations' : 'Before any tutorial step was seen';
      rows.push(el('tr', {className: 'step', 'data-step': String(group || '')}, el('td', {colspan: 4}, title)));
    }
    const query = Object.entries(entry.query).filter(([key]) => key !== 'api-version').map(([key, value]) => key + '=' + value).join('&');
    rows.push(el('tr', {className: 'request' + (entry.seq === store.selectedRequest ? ' selected' : ''), 'data-seq': entry.seq,
      'data-operation': entry.operation || '', tabindex: 0, onclick: () => showRequest(entry.seq)},
    el('td', {}, entry.time.slice(11, 19)),
    el('td', {title: entry.method + ' ' + entry.path + (query ? '?' + query : '')}, entry.operation || '(no operation)',
      el('span', {className: 'path'}, entry.method + ' ' + entry.path + (query ? '?' + query : ''))),
    statusCell(entry.status), el('td', {}, entry.ms)));
  }
  document.querySelector('#requests tbody').replaceChildren(...rows);
  document.getElementById('requests-shown').textContent = shown.length + ' of ' + store.requests.length + ' requests';
}

function bodyBlock(title, body) {
  if (!body) return [el('h3', {}, title), el('p', {className: 'muted'}, 'none')];
  let text = body.text;
  if (!body.truncated) {
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { /* not JSON: shown as it is */ }
  }
  return [el('h3', {}, title + ' (' + body.size + ' bytes' + (body.truncated ? ', the start shown' : '') + ')'),
    el('pre', {'data-body': title}, text)];
}

function headerList(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return el('p', {className: 'muted'}, 'none recorded');
  return el('dl', {}, ...entries.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]));
}

async function showRequest(seq) {
  store.selectedRequest = seq;
  renderRequests();
  const detail = document.getElementById('request-detail');
  detail.replaceChildren(el('p', {className: 'muted'}, 'Loading…'));
  try {
    const entry = await getJson('/portal/api/request?seq=' + seq);
    const known = store.requests.find(item => item.seq === seq) || {};
    const query = Object.entries(entry.query).map(([key, value]) => key + '=' + value).join('&');
    const info = entry.detail || {};
    const requestBody = info.requestBody || (info.requestBodyLength ? null : undefined);
    detail.replaceChildren(
      el('h3', {}, (entry.operation || '(no operation)') + ' → ', el('span', {className: entry.status < 400 ? 'text-ok' : 'text-bad'},
        String(entry.status)), ' in ' + entry.ms + ' ms'),
      el('dl', {},
        el('dt', {}, 'request'), el('dd', {}, entry.method + ' ' + entry.path + (query ? '?' + query : '')),
        el('dt', {}, 'time'), el('dd', {}, entry.time),
        el('dt', {}, 'step'), el('dd', {}, known.step ? STEPS[known.step] + ' (inferred: ' + (known.stepMarker ||
          'made while it ran') + ')' : 'none inferred'),
        el('dt', {}, 'request-id'), el('dd', {}, info.requestId || '—')),
      el('h3', {}, 'Request headers'), headerList(info.requestHeaders),
      ...(requestBody === null ? [el('h3', {}, 'Request body'), el('p', {className: 'muted'}, info.requestBodyLength +
        ' bytes, not recorded by this emulator')] : bodyBlock('Request body', requestBody)),
      el('h3', {}, 'Response headers'), headerList(info.responseHeaders),
      ...bodyBlock('Response body', info.responseBody));
  } catch (error) {
    detail.replaceChildren(el('p', {className: 'text-bad'}, error.message));
  }
}

// ---------------------------------------------------------------- storage

function renderStorage() {
  const storage = store.storage;
  const container = document.getElementById('storage');
  if (!storage) return;
  if (!storage.connected) {
    container.replaceChildren(el('p', {className: 'muted'}, storage.error ||
      'Not connected to a storage account (start the emulator with --storage-connection-string).'));
    return;
  }
  if (!storage.containers.length) { container.replaceChildren(el('p', {className: 'muted'}, 'No containers.')); return; }
  const filter = document.getElementById('filter-blob').value.trim().toLowerCase();
  const limit = 200;  // blobs drawn per container; the filter finds the others
  container.replaceChildren(...storage.containers.map(item => {
    const matching = item.blobs.filter(blob => !filter || blob.name.toLowerCase().includes(filter));
    return el('div', {'data-container': item.name},
      el('h3', {}, 'Container ' + item.name + ' (' + item.blobs.length + (item.blobs.length >= 500 ? '+' : '') + ' blobs)'),
      el('table', {className: 'blobs'}, el('tbody', {}, ...matching.slice(0, limit).map(blob =>
        el('tr', {}, el('td', {}, blob.name), el('td', {}, blob.size + ' B'))))),
      matching.length > limit ? el('p', {className: 'muted'}, (matching.length - limit) + ' more: filter by name to find them.') : null);
  }));
}

// ---------------------------------------------------------------- the update loop

function renderAll(force) {
  document.getElementById('account').textContent = store.account;
  renderPools();
  renderJobs();
  const job = selectedJob();
  if (job) {
    const now = Date.now();
    renderNodeFilter(job);
    // The pictures change when tasks changed, while tasks run or wait (their bars and lines grow), or on resize.
    const counts = job.info.counts;
    const key = [job.info.id, job.version, store.pickedTask, window.innerWidth, counts.active + counts.running].join('|');
    if (force || key !== renderAll.pictures || counts.active + counts.running > 0) {
      renderAll.pictures = key;
      renderTimeline(job, now);
      renderCountsChart(job, now);
    }
    document.getElementById('tasks-title').textContent = 'Tasks of job ' + job.info.id;
  }
  renderTaskRows(force);
}

async function refreshBatch() {
  try {
    const overview = await getJson('/portal/api/overview?since=' + encodeURIComponent(store.token));
    const requests = await getJson('/portal/api/requests?since=' + encodeURIComponent(store.requestToken));
    const started = performance.now();
    applyOverview(overview);
    renderAll(false);
    if (applyRequests(requests)) renderRequests();
    const spent = performance.now() - started;
    const stats = window.portalStats;
    Object.assign(stats, {updates: stats.updates + 1, lastMs: spent, maxMs: Math.max(stats.maxMs, spent), totalMs: stats.totalMs + spent});
    stats.samples.push([Math.round(spent * 10) / 10, stats.lastTasksReceived]);  // [ms, tasks received]
    if (stats.samples.length > 600) stats.samples.shift();
    document.getElementById('status').textContent = '';
  } catch (error) {
    document.getElementById('status').textContent = 'The emulator is not answering (' + error.message + ').';
  }
}

async function refreshStorage() {
  if (document.getElementById('storage-panel').hidden && store.storage) return;  // polled while shown, and once
  try { store.storage = await getJson('/portal/api/storage'); renderStorage(); } catch (error) { /* shown by refreshBatch */ }
}

function loop(action, interval) {
  action().finally(() => setTimeout(() => loop(action, interval), interval));
}

function wire() {
  for (const tab of ['requests', 'file', 'storage']) {
    document.getElementById('tab-' + tab).addEventListener('click', () => { showTab(tab); if (tab === 'storage') refreshStorage(); });
  }
  for (const id of ['filter-state', 'filter-node', 'filter-failed']) document.getElementById(id).addEventListener('change', () => {
    if (id === 'filter-node') { store.pickedNode = null; renderPools(); }
    filtersChanged();
  });
  document.getElementById('filter-search').addEventListener('input', filtersChanged);
  document.getElementById('filter-resource').addEventListener('change', renderRequests);
  document.getElementById('group-steps').addEventListener('change', renderRequests);
  document.getElementById('filter-blob').addEventListener('input', renderStorage);
  document.getElementById('task-viewport').addEventListener('scroll', () => requestAnimationFrame(() => renderTaskRows(false)));
  document.getElementById('timeline').addEventListener('click', timelineClick);
  window.addEventListener('resize', () => renderAll(true));
  renderTimelineLegend();
}

wire();
loop(refreshBatch, POLL_MS);
loop(refreshStorage, 2 * POLL_MS);
