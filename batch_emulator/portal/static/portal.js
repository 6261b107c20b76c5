// The local Batch portal: polls the emulator's read-only JSON endpoints and redraws what changed.
// Everything from the server is inserted as text (textContent), never as HTML. The pictures (node
// heatmap, task timeline, counts chart) are drawn with plain DOM, canvas and SVG: no library, no CDN.
'use strict';

const POLL_MS = 1000;
const ROW_HEIGHT = 26;  // px, as .task-row in portal.css: the task list draws only the rows in view
const SVG = 'http://www.w3.org/2000/svg';
const ID_ORDER = new Intl.Collator('en', {numeric: true});
const TASK_LABELS = {active: '◷ active', preparing: '◔ preparing', running: '▶ running', completed: '✓ completed'};
const WAITING_LABEL = '◷ waiting for dependencies';  // an active task whose dependencies have not all completed
const COLOURS = {queued: '#6e7781', prep: '#9a6700', run: '#0969da', ok: '#1a7f37', bad: '#cf222e'};

// What the page knows. Tasks arrive as changes since the previous answer (its token) and are merged here.
const store = {
  token: '', account: '', pools: [], schedules: [], jobs: new Map(), selectedJob: null, chosenByUser: false,
  pickedTask: null, pickedNode: null, requestToken: '', requests: [], currentStep: null, selectedRequest: null,
  storage: null, nodeNumbers: new Map(),
};
// Measured by the page itself (performance.now() around each update): the benchmark and tests read it.
window.portalStats = {updates: 0, deferred: 0, lastMs: 0, maxMs: 0, totalMs: 0, tasksKnown: 0, lastTasksReceived: 0, samples: []};

function el(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'onclick') {  // through a property, so that morph() can hand a kept element the new action
      element.clickAction = value;
      listen(element);
    } else if (name === 'className') element.className = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function listen(element) {
  if (element.listening) return;
  element.listening = true;
  element.addEventListener('click', event => { if (element.clickAction) element.clickAction(event); });
}

// Redrawn in place: makes the page's element `current` look like `fresh` (built by el() for this update) while
// keeping `current` and each of its children that has a counterpart; only what differs is touched. A row, a cell,
// a button stays the same element from one poll to the next, so a click that began before an update still lands
// (a replaced element swallows it) and a reference to it stays valid.
function morph(current, fresh) {
  if (current === fresh) return;
  if (current.nodeType !== Node.ELEMENT_NODE) {
    if (current.nodeValue !== fresh.nodeValue) current.nodeValue = fresh.nodeValue;
    return;
  }
  for (const name of current.getAttributeNames()) if (name !== 'style' && !fresh.hasAttribute(name)) current.removeAttribute(name);
  for (const name of fresh.getAttributeNames()) {
    const value = fresh.getAttribute(name);
    if (name !== 'style' && current.getAttribute(name) !== value) current.setAttribute(name, value);
  }
  if (current.style.cssText !== fresh.style.cssText) current.style.cssText = fresh.style.cssText;  // the CSSOM: CSP allows it
  current.clickAction = fresh.clickAction;
  if (fresh.clickAction) listen(current);
  morphChildren(current, [...fresh.childNodes]);
}

// The children of `parent` become `wanted`: those with a data-key (rows, node cells: their id) are matched by it
// wherever they are, the others by position and kind; new ones are inserted, the rest removed.
function morphChildren(parent, wanted) {
  const keys = new Set(wanted.map(node => node.dataset && node.dataset.key).filter(Boolean));
  const keyed = new Map();
  for (const child of [...parent.children]) {
    const key = child.dataset.key;
    if (key && keys.has(key) && !keyed.has(key)) keyed.set(key, child);
    else if (key) child.remove();
  }
  wanted.forEach((fresh, index) => {
    const here = parent.childNodes[index] || null;
    const key = fresh.dataset && fresh.dataset.key;
    const match = key ? keyed.get(key) : here && here.nodeName === fresh.nodeName && !(here.dataset && here.dataset.key) ? here : null;
    if (!match) { parent.insertBefore(fresh, here); return; }
    if (match !== here) parent.insertBefore(match, here);
    morph(match, fresh);
  });
  while (parent.childNodes.length > wanted.length) parent.lastChild.remove();
}

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  return element;
}

function shortId(id) {
  return id && id.length > 24 ? id.slice(0, 12) + '…' + id.slice(-8) : id;
}

// One name for a node in every view (heatmap, timeline, task list and detail, node filter): 'node N', N its place
// in its pool in the order this page first saw the nodes. N stays while the page is open (a node leaving the pool
// does not renumber the others); the node's id is in its tooltips and in the picked node's line.
function nodeName(poolId, nodeId) {
  if (!nodeId) return '—';
  let numbers = store.nodeNumbers.get(poolId);
  if (!numbers) store.nodeNumbers.set(poolId, numbers = new Map());
  if (!numbers.has(nodeId)) numbers.set(nodeId, numbers.size + 1);  // a task's node that left before the page saw it
  return 'node ' + numbers.get(nodeId);
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

// An ISO 8601 duration as the service writes it (PT5M, P1DT2H, PT30S) in words: '5 min', '1 d 2 h', '30 s'.
function durationText(text) {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(text || '');
  if (!match) return text || '—';
  const parts = [[match[1], 'd'], [match[2], 'h'], [match[3], 'min'], [match[4], 's']].filter(([value]) => value && +value);
  return parts.length ? parts.map(([value, unit]) => value + ' ' + unit).join(' ') : '0 s';
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
  store.schedules = overview.schedules || [];
  store.now = overview.now;
  for (const pool of store.pools) {  // numbered as first seen, and listed by that number
    for (const node of pool.nodes) nodeName(pool.id, node.id);
    const numbers = store.nodeNumbers.get(pool.id);
    pool.nodes.sort((a, b) => numbers.get(a.id) - numbers.get(b.id));
  }
  let received = 0;
  let resync = false;
  const seen = new Set();
  for (const row of overview.jobs) {
    seen.add(row.id);
    let job = store.jobs.get(row.id);
    if (!job || job.generation !== row.generation || overview.full) {
      job = {tasks: new Map(), order: [], version: 0, generation: row.generation, waiting: new Set()};
      store.jobs.set(row.id, job);
    }
    job.info = row;
    let added = false;
    // The tasks waiting for their dependencies come when that list changed (a task leaving it gets no stamp).
    if (overview.waiting) {
      const waiting = new Set((row.waiting || []).map(id => id.toLowerCase()));
      if (waiting.size !== job.waiting.size || [...waiting].some(id => !job.waiting.has(id))) job.version += 1;
      job.waiting = waiting;
    }
    for (const task of row.tasks) {
      const known = job.tasks.get(task.id);
      // The nodes it ran on: a multi-instance task's subtasks run on nodes of their own.
      task.nodeIds = [task.nodeId, ...(task.subtasks || []).map(subtask => subtask.nodeId)].filter(Boolean);
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
  rebooting: '↻ rebooting', reimaging: '↻ reimaging', leavingpool: '⇥ leaving pool', offline: 'offline',
  preempted: 'preempted', deallocating: '↓ deallocating', deallocated: '○ deallocated'};

const NODE_STATE_SHORT = {idle: 'idle', running: 'run', starting: 'start', creating: 'new', waitingforstarttask: 'wait',
  starttaskfailed: 'FAIL', unusable: 'BAD', rebooting: 'boot', reimaging: 'reimg', leavingpool: 'leave', offline: 'off',
  preempted: 'pre', deallocating: 'dealc', deallocated: 'deal'};

const SCHEDULING_OFF = '⊘ scheduling off';
const SPOT_MARK = '☁';  // a Spot/low-priority node (the legend and its title say so)
const PREEMPTED_COLOUR = '#8250df';  // a preemption on the timeline (the node heatmap's preempted colour family)

function nodeCell(pool, node, compact) {
  const used = node.runningSlots || 0;
  const start = node.startTask;
  const startText = start ? 'start task ' + start.state + (start.result ? ' / ' + start.result : '') +
    (start.exitCode !== null && start.exitCode !== undefined ? ' (exit ' + start.exitCode + ')' : '') : 'no start task';
  const selected = store.pickedNode && store.pickedNode.node === node.id && store.pickedNode.pool === pool.id;
  const off = node.schedulingState === 'disabled';
  const users = node.users || [];
  const spot = node.dedicated === false;
  const preempted = (node.preemptions || []).length;
  const title = [node.id, spot ? 'Spot/low-priority node (isDedicated false): Azure may preempt it' : 'dedicated node',
    preempted ? 'preempted ' + preempted + ' time(s), last at ' + clockTime(node.preemptions[preempted - 1]) : null,
    'state: ' + node.state, 'scheduling ' + (off ? 'disabled: no new task starts here' : 'enabled'),
    startText, node.totalTasksRun + ' tasks run', users.length ? 'node users: ' + users.join(', ') : null,
    'click: its tasks and start task files'].filter(Boolean).join('\n');
  const cell = el('button', {
    type: 'button', className: 'node-cell node-' + node.state + (spot ? ' spot' : '') + (off ? ' scheduling-off' : '') +
      (selected ? ' selected' : ''),
    'data-key': node.id, 'data-node-id': node.id, 'data-state': node.state, 'data-scheduling': node.schedulingState || 'enabled',
    'data-spot': String(spot), 'data-preemptions': String(preempted),
    'data-users': String(users.length), title, onclick: () => pickNode(pool, node),
  },
  el('span', {'data-node-name': ''}, nodeName(pool.id, node.id) + (compact && off ? ' ⊘' : '')),
  el('span', {className: 'node-state'}, (spot ? SPOT_MARK + ' ' : '') +
    (compact ? NODE_STATE_SHORT[node.state] || node.state : NODE_STATE_TEXT[node.state] || node.state)),
  el('span', {'data-slots': used + '/' + pool.slotsPerNode}, used + '/' + pool.slotsPerNode + (compact ? '' : ' slots')),
  off && !compact ? el('span', {className: 'node-scheduling'}, SCHEDULING_OFF) : null,
  users.length && !compact ? el('span', {'data-node-users': String(users.length)}, users.length + (users.length === 1 ? ' node user' : ' node users')) : null,
  el('div', {className: 'slots'}, el('i', {})));
  // The slot bar's width is set through the CSSOM (a style attribute would be refused by the page's CSP).
  cell.querySelector('.slots i').style.width = Math.round(100 * used / pool.slotsPerNode) + '%';
  return cell;
}

// What made an auto pool and when it goes: lifetime job (the job's) or jobschedule (every job of a schedule).
function autoPoolText(owner) {
  const whose = owner.lifetime === 'job' ? 'job ' + owner.jobId : 'job schedule ' + owner.scheduleId;
  const ends = owner.lifetime === 'job' ? 'when the job completes or is deleted' : 'when the schedule completes or is deleted';
  return ['auto pool of ' + whose, 'lifetime: ' + owner.lifetime + ' — ' + (owner.keepAlive ? 'kept alive (keepAlive), not deleted ' + ends
    : 'deleted ' + ends)];
}

// Autoscale: the formula, how often it runs, and what its last periodic run gave (or its error).
function autoscaleBlock(pool) {
  const scale = pool.autoScale;
  const run = scale.lastRun;
  let last;
  if (!run) {
    last = el('p', {className: 'muted', 'data-autoscale-run': 'none'}, 'No periodic evaluation yet (enabling evaluated the formula ' +
      'once and applied it; a run is shown after the first interval).');
  } else if (run.error) {
    last = el('p', {'data-autoscale-run': 'error'}, 'Last evaluation ' + clockTime(run.time) + ': ',
      el('span', {className: 'text-bad', 'data-autoscale-error': run.error.code}, '✗ error ' + run.error.code), ' — ' +
      run.error.message + (run.error.detail ? ' (' + run.error.detail + ')' : ''), el('br', {}), 'results: ',
      el('code', {className: 'results'}, run.results));
  } else {
    last = el('p', {'data-autoscale-run': 'success'}, el('span', {className: 'text-ok'}, '✓'), ' Last evaluation ' + clockTime(run.time) +
      ': ', el('code', {className: 'results', 'data-autoscale-results': ''}, run.results));
  }
  return el('div', {className: 'autoscale', 'data-autoscale': pool.id},
    el('p', {}, el('strong', {}, '⟳ Autoscale on'), ' — the formula runs every ' + durationText(scale.interval) +
      ' (autoScaleEvaluationInterval ' + scale.interval + ') and sets the target: now ' + pool.target + ' node(s)'),
    el('pre', {className: 'formula', 'data-autoscale-formula': ''}, scale.formula), last);
}

function renderPools() {
  const container = document.getElementById('pools');
  if (!store.pools.length) { morphChildren(container, [el('p', {className: 'muted'}, 'No pools yet.')]); return; }
  morphChildren(container, store.pools.map(pool => {
    const tally = {};
    let schedulingOff = 0;
    for (const node of pool.nodes) {
      tally[node.state] = (tally[node.state] || 0) + 1;
      if (node.schedulingState === 'disabled') schedulingOff += 1;
    }
    const compact = pool.nodes.length > 12;  // 50 nodes: small cells, short labels (the legend says them in full)
    const cells = pool.nodes.map(node => nodeCell(pool, node, compact));
    const summary = Object.entries(tally).map(([state, count]) => count + ' ' + (NODE_STATE_TEXT[state] || state))
      .concat(schedulingOff ? [schedulingOff + ' with scheduling disabled'] : []).join(' · ');
    const picked = store.pickedNode && store.pickedNode.pool === pool.id ? nodeDetail(pool) : null;
    const legend = Object.entries(NODE_STATE_SHORT).filter(([state, short]) => tally[state] && short !== NODE_STATE_TEXT[state])
      .map(([state, short]) => el('span', {}, short + ' = ' + NODE_STATE_TEXT[state]));
    if (schedulingOff) legend.push(el('span', {}, '⊘ = scheduling disabled'));
    const spotNodes = pool.nodes.filter(node => node.dedicated === false).length;
    if (spotNodes) legend.push(el('span', {'data-spot-legend': ''}, SPOT_MARK + ' = Spot node (can be preempted)'));
    const owner = pool.autoPoolOf;
    return el('div', {'data-pool-id': pool.id, 'data-key': pool.id},
      el('p', {className: 'pool-head'}, el('strong', {}, 'Pool ' + pool.id), ' — ' + pool.state + ', allocation ',
        el('span', {'data-allocation': pool.allocationState}, pool.allocationState),
        ', ' + pool.current + ' of ' + pool.target + (pool.spotTarget || pool.spotCurrent ? ' dedicated and ' + pool.spotCurrent +
          ' of ' + pool.spotTarget + ' Spot' : '') + ' nodes' + (pool.autoScale ? ' (autoscale)' : '') + ', ' + pool.vmSize + ', ' +
        pool.slotsPerNode + ' slot(s) per node' + (summary ? ': ' + summary : '')),
      owner ? el('p', {className: 'auto-pool', 'data-auto-pool-of': owner.jobId || owner.scheduleId},
        el('span', {className: 'tag'}, autoPoolText(owner)[0]), ' ' + autoPoolText(owner)[1]) : null,
      pool.autoScale ? autoscaleBlock(pool) : null,
      el('div', {className: 'heatmap' + (compact ? ' compact' : ''), role: 'list'}, ...cells),
      (compact || spotNodes) && legend.length ? el('p', {className: 'legend'}, ...legend) : null, picked);
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
  const users = node.users || [];
  return el('p', {className: 'node-files', 'data-picked-node': node.id},
    el('span', {}, el('strong', {}, nodeName(pool.id, node.id)), ' (' + node.id + '):'),
    el('span', {}, NODE_STATE_TEXT[node.state] || node.state),
    el('span', {'data-node-scheduling': node.schedulingState}, node.schedulingState === 'disabled' ? SCHEDULING_OFF : 'scheduling on'),
    el('span', {'data-node-users': users.join(',')}, users.length ? 'node users: ' + users.join(', ') : 'no node users'),
    ...links, el('span', {className: 'muted'}, '(its tasks are filtered below)'));
}

function pickNode(pool, node) {
  const same = store.pickedNode && store.pickedNode.node === node.id;
  store.pickedNode = same ? null : {pool: pool.id, node: node.id};
  document.getElementById('filter-node').value = same ? '' : node.id;
  filtersChanged();
  renderPools();
}

// ---------------------------------------------------------------- jobs

function selectJob(id) {
  store.selectedJob = id;
  store.chosenByUser = true;
  renderAll(true);
}

// A job a schedule made ({schedule}:job-N): the schedule's name muted, then job-N.
function jobIdCell(info) {
  if (!info.schedule) return el('td', {title: info.id}, info.id);
  return el('td', {title: 'job ' + info.schedule.number + ' of the job schedule ' + info.schedule.id, 'data-schedule': info.schedule.id},
    el('span', {className: 'muted'}, info.schedule.id + ':'), 'job-' + info.schedule.number);
}

function poolCell(info) {
  // The job's own auto pool, or the auto pool its job schedule made for all its jobs (lifetime jobschedule).
  const pool = info.autoPool ? null : store.pools.find(item => item.id === info.poolId);
  const owner = pool && pool.autoPoolOf && pool.autoPoolOf.lifetime === 'jobschedule' ? pool.autoPoolOf : null;
  if (!info.autoPool && !owner) return el('td', {title: info.poolId}, info.poolId);
  const whose = owner ? 'the auto pool of the job schedule ' + owner.scheduleId : 'the auto pool of this job';
  const kept = (owner || info.autoPool).keepAlive ? ' (kept alive)' : '';
  return el('td', {title: whose + ': ' + info.poolId + kept, 'data-auto-pool': info.poolId},
    el('span', {className: 'tag'}, 'auto pool'), ' ' + shortId(info.poolId));
}

const SCHEDULE_LABELS = {active: '▶ active', disabled: '⊘ disabled', completed: '✓ completed', terminating: '◔ terminating',
  deleting: '✗ deleting'};
const JOB_MARKS = {active: '▶', disabled: '⊘', terminating: '◔', completed: '✓', deleting: '✗'};

function renderSchedules() {
  const container = document.getElementById('schedules');
  container.hidden = !store.schedules.length;
  if (!store.schedules.length) { morphChildren(container, []); return; }
  const now = store.now || Date.now();
  const rows = store.schedules.map(schedule => {
    const next = schedule.nextRun ? clockTime(schedule.nextRun) + (schedule.nextRun > now ? ' (in ' + seconds(schedule.nextRun - now) + ')'
      : ' (due)') : '—';
    const shown = schedule.jobs.slice(-4);
    const jobs = shown.map(job => el('button', {className: 'link', type: 'button', 'data-schedule-job': job.id,
      title: job.id + ': ' + job.state, onclick: () => selectJob(job.id)}, (JOB_MARKS[job.state] || '') + ' ' + job.id.slice(schedule.id.length + 1)));
    const earlier = schedule.jobs.length - shown.length;
    const recurrence = schedule.recurrence ? 'every ' + durationText(schedule.recurrence) : 'once';
    const timing = [schedule.doNotRunUntil ? 'not before ' + clockTime(schedule.doNotRunUntil) : null,
      schedule.doNotRunAfter ? 'not after ' + clockTime(schedule.doNotRunAfter) : null,
      schedule.startWindow ? 'start window ' + durationText(schedule.startWindow) : null].filter(Boolean).join(', ');
    return el('tr', {'data-schedule-id': schedule.id, 'data-key': schedule.id},
      el('td', {title: schedule.id + (schedule.displayName ? ' — ' + schedule.displayName : '')}, schedule.id),
      el('td', {'data-schedule-state': schedule.state}, SCHEDULE_LABELS[schedule.state] || schedule.state),
      el('td', {title: (schedule.recurrence || 'no recurrenceInterval') + (timing ? '; ' + timing : '')}, recurrence),
      el('td', {'data-next-run': schedule.nextRun ? String(schedule.nextRun) : ''}, next),
      el('td', {'data-recent-job': schedule.recentJob || ''}, schedule.recentJob
        ? el('button', {className: 'link', type: 'button', onclick: () => selectJob(schedule.recentJob)}, schedule.recentJob.slice(schedule.id.length + 1))
        : '—'),
      el('td', {className: 'schedule-jobs'}, ...(jobs.length ? jobs : ['none yet']),
        earlier > 0 ? el('span', {className: 'muted'}, '+' + earlier + ' earlier') : null));
  });
  morphChildren(container, [el('h3', {}, 'Job schedules ', el('span', {className: 'muted'}, '— each creates its jobs {schedule}:job-N on time')),
    el('table', {className: 'jobs schedules'},
      el('thead', {}, el('tr', {}, ...['schedule', 'state', 'recurrence', 'next run', 'recent job', 'its jobs'].map(h => el('th', {}, h)))),
      el('tbody', {}, ...rows))]);
}

function renderJobs() {
  renderSchedules();
  const container = document.getElementById('jobs');
  document.getElementById('job-pictures').hidden = !store.selectedJob;
  if (!store.jobs.size) { morphChildren(container, [el('p', {className: 'muted'}, 'No jobs yet.')]); return; }
  const jobs = [...store.jobs.values()].sort((a, b) => b.info.created - a.info.created);
  const rows = jobs.map(job => {
    const counts = job.info.counts;
    const waiting = job.waiting.size;
    return el('tr', {className: job.info.id === store.selectedJob ? 'selected' : '', 'data-job-id': job.info.id, 'data-key': job.info.id,
      onclick: () => selectJob(job.info.id)},
    jobIdCell(job.info), poolCell(job.info), el('td', {}, job.info.state),
    ...['active', 'running', 'completed', 'succeeded', 'failed'].map(name =>
      el('td', {'data-count': name, className: name === 'failed' && counts[name] ? 'text-bad' : '',
        title: name === 'active' && waiting ? waiting + ' of them waiting for dependencies' : null}, counts[name])));
  });
  morphChildren(container, [el('table', {className: 'jobs job-list'},
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

// A task's runs on the timeline: the task on its node, and a multi-instance task's subtasks on theirs.
function timelineRuns(task) {
  if (!task.subtasks || !task.subtasks.length) return [task];
  return [task, ...task.subtasks.filter(subtask => subtask.start && subtask.nodeId).map(subtask => ({
    id: task.id, state: subtask.state, result: subtask.result, start: subtask.start, end: subtask.end, nodeId: subtask.nodeId,
    parent: task}))];
}

function renderTimeline(job, now) {
  const canvas = document.getElementById('timeline');
  const pool = store.pools.find(item => item.id === job.info.poolId);
  const lanes = new Map();  // node id -> tasks that ran there
  const preemptions = new Map();  // node id -> when it was preempted (its tasks were requeued then)
  for (const node of pool ? pool.nodes : []) {
    lanes.set(node.id, []);
    preemptions.set(node.id, node.preemptions || []);
  }
  let first = Infinity;
  let last = job.info.created;
  let runs = 0;
  for (const task of job.tasks.values()) {
    if (!task.start || !task.nodeId) continue;
    for (const run of timelineRuns(task)) {
      if (!lanes.has(run.nodeId)) lanes.set(run.nodeId, []);
      lanes.get(run.nodeId).push(run);
      first = Math.min(first, run.start);
      last = Math.max(last, run.end || now);
      runs += 1;
    }
  }
  const poolId = job.info.poolId;
  for (const nodeId of lanes.keys()) nodeName(poolId, nodeId);
  const numbers = store.nodeNumbers.get(poolId);
  const ids = [...lanes.keys()].sort((a, b) => numbers.get(a) - numbers.get(b));  // node 1 on top
  const names = ids.map(nodeId => nodeName(poolId, nodeId));
  // The lanes as text inside the canvas (what a screen reader reads): the names drawn, each with its node's id.
  const marks = nodeId => (preemptions.get(nodeId) || []).filter(moment => moment >= job.info.created);
  canvas.replaceChildren(el('ul', {}, ...ids.map((nodeId, lane) => el('li', {'data-node-id': nodeId},
    names[lane] + ' (' + nodeId + '): ' + lanes.get(nodeId).length + ' task run(s)' +
    (marks(nodeId).length ? ', preempted ' + marks(nodeId).length + ' time(s): its tasks were requeued' : '')))));
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
    canvas.dataset.preemptions = '0';
    return;
  }
  for (const nodeId of ids) for (const moment of marks(nodeId)) first = Math.min(first, moment);  // a requeued run
  const span = Math.max(1000, last - first);
  const x = moment => left + (moment - first) / span * plot;
  const bars = timeline.bars && timeline.bars.length >= runs * 5 ? timeline.bars : new Float64Array(runs * 5 + 5);
  const picked = [];
  const barTasks = [];
  let count = 0;
  ids.forEach((nodeId, lane) => {
    const top = lane * laneHeight;
    context.fillStyle = lane % 2 ? '#f6f8fa' : '#ffffff';
    context.fillRect(left, top, plot, laneHeight);
    if (laneHeight >= 9) {
      context.fillStyle = '#57606a';
      context.fillText(names[lane], 4, top + laneHeight / 2);
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
  // A preemption: a mark across its node's lane at the moment (the task that ran there went back to the queue).
  let preempted = 0;
  context.fillStyle = PREEMPTED_COLOUR;
  ids.forEach((nodeId, lane) => {
    for (const moment of marks(nodeId)) {
      if (moment < first || moment > last) continue;
      context.fillRect(x(moment) - 1, lane * laneHeight, 3, laneHeight);
      preempted += 1;
    }
  });
  canvas.dataset.preemptions = String(preempted);
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
  if (best >= 0) pickTask(timeline.tasks[best].parent || timeline.tasks[best]);
}

function pickTask(task) {
  store.pickedTask = task.id;
  store.pickedTaskJob = store.selectedJob;
  const job = selectedJob();
  const duration = task.start ? seconds((task.end || Date.now()) - task.start) : 'not started';
  document.getElementById('timeline-picked').textContent = 'Task ' + task.id + ' on ' + (job ? nodeName(job.info.poolId, task.nodeId) : '—') + ': ' +
    (task.state === 'completed' ? (task.result === 'failure' ? 'failed' : 'succeeded') + ', exit code ' + task.exitCode : task.state) +
    ', ' + duration + '. It is highlighted in the task list.';
  document.getElementById('filter-search').value = '';
  filtersChanged();
  const index = taskList.filtered.indexOf(task);
  if (index >= 0) document.getElementById('task-viewport').scrollTop = Math.max(0, index * ROW_HEIGHT - ROW_HEIGHT * 2);
  renderAll(true);
}

function renderTimelineLegend() {
  const items = [['running', COLOURS.run], ['preparing', COLOURS.prep], ['succeeded', COLOURS.ok], ['failed', COLOURS.bad],
    ['Spot node preempted (its tasks requeued)', PREEMPTED_COLOUR]];
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
  // Two axes: queued and completed on the left (0 to the job's tasks), running on the right (0 to its peak): a few
  // tasks running among hundreds would otherwise be a line along the bottom.
  const total = Math.max(1, job.tasks.size);
  const peakRunning = Math.max(1, ...series[1]);
  const scales = [total, peakRunning, total];
  const left = 34;
  const right = 28;
  const plotWidth = width - left - right;
  const plotHeight = height - 18;
  const points = (values, scale) => Array.from(values, (value, index) =>
    (left + index / bins * plotWidth).toFixed(1) + ',' + (plotHeight - value / scale * (plotHeight - 4)).toFixed(1)).join(' ');
  chart.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  const names = [['active (queued)', COLOURS.queued, '4 3'], ['running', COLOURS.run, ''], ['completed', COLOURS.ok, '']];
  const lines = series.map((values, index) => svg('polyline', {points: points(values, scales[index]), fill: 'none',
    stroke: names[index][1], 'stroke-width': 2, 'stroke-dasharray': names[index][2], 'data-series': names[index][0].split(' ')[0],
    'data-scale': String(scales[index])}));
  const label = (text, x, y, anchor, colour) => {
    const item = svg('text', {x, y, 'text-anchor': anchor || 'start'});
    if (colour) item.style.fill = colour;
    item.textContent = text;
    return item;
  };
  chart.replaceChildren(
    svg('line', {x1: left, y1: plotHeight, x2: left + plotWidth, y2: plotHeight, stroke: '#d0d7de'}),
    label(String(total), left - 4, 8, 'end'), label('0', left - 4, plotHeight, 'end'),
    svg('line', {x1: left + plotWidth + 2, y1: 4, x2: left + plotWidth + 2, y2: plotHeight, stroke: COLOURS.run, 'stroke-width': 1}),
    Object.assign(label(String(peakRunning), left + plotWidth + 5, 8, 'start', COLOURS.run), {id: 'counts-running-max'}),
    label('0', left + plotWidth + 5, plotHeight, 'start', COLOURS.run),
    label(clockTime(start), left, height - 4), label(clockTime(end), left + plotWidth, height - 4, 'end'), ...lines);
  const latest = series.map(values => values[bins]);
  const axes = ['left axis, 0–' + total, 'right axis, 0–' + peakRunning, 'left axis'];
  document.getElementById('counts-legend').replaceChildren(...names.map(([name, colour], index) => {
    const swatch = el('span', {className: 'swatch'});
    swatch.style.background = colour;
    return el('span', {'data-legend': name.split(' ')[0], title: axes[index]}, swatch, name + ': ' + latest[index] +
      (index === 1 ? ' (right axis)' : ''));
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
    if (state === 'waiting' ? !isWaiting(job, task) : state && task.state !== state) continue;
    if (node && !(task.nodeIds || []).includes(node)) continue;
    if (failedOnly && task.result !== 'failure') continue;
    if (search && !task.id.toLowerCase().includes(search)) continue;
    filtered.push(task);
  }
  Object.assign(taskList, {filtered, job: job.info.id, version: job.version, filters: key});
  document.getElementById('task-spacer').style.height = filtered.length * ROW_HEIGHT + 'px';
  document.getElementById('tasks-shown').textContent = filtered.length + ' of ' + job.tasks.size + ' tasks';
  return true;
}

// Active, and its dependencies not all met: the job's waiting list (sent when it changes) says so.
function isWaiting(job, task) {
  return task.state === 'active' && job.waiting.has(task.id.toLowerCase());
}

function taskBadge(task, job) {
  const failed = task.state === 'completed' && task.result === 'failure';
  const waiting = job && isWaiting(job, task);
  const label = waiting ? WAITING_LABEL : task.state === 'completed' ? (failed ? '✗ failed' : '✓ succeeded') : (TASK_LABELS[task.state] || task.state);
  const kind = waiting ? 'waiting' : task.state === 'completed' ? (failed ? 'failure' : 'success') : task.state;
  return el('span', {className: 'badge badge-' + kind, 'data-state': task.state, 'data-waiting': waiting ? 'dependencies' : null,
    title: 'state: ' + task.state + (waiting ? ', waiting for the tasks it depends on' : '') + (task.result ? ', result: ' + task.result : '')}, label);
}

// dependsOn as the user wrote it: its ids, then its ranges (start–end).
function dependsOnText(dependsOn) {
  const ids = dependsOn.taskIds.join(', ') + (dependsOn.taskIdCount > dependsOn.taskIds.length
    ? ' and ' + (dependsOn.taskIdCount - dependsOn.taskIds.length) + ' more' : '');
  const ranges = dependsOn.taskIdRanges.map(range => range.start + '–' + range.end).join(', ');
  return [ids, ranges].filter(Boolean).join(', ');
}

function taskRow(job, task, now) {
  const jobId = job.info.id;
  const exit = task.exitCode === null || task.exitCode === undefined ? '—' : task.exitCode;
  const duration = task.start ? seconds((task.end || now) - task.start) : '—';
  const extra = task.nodeIds && task.nodeIds.length > 1 ? ' +' + (task.nodeIds.length - 1) : '';
  const idCell = el('span', {title: task.id + (task.dependsOn ? '\ndepends on ' + dependsOnText(task.dependsOn) : '') +
    (task.instances ? '\nmulti-instance: ' + task.instances + ' instances' : '')}, task.id,
  task.instances ? el('span', {className: 'muted', 'data-instances': String(task.instances)}, ' ×' + task.instances) : null,
  task.dependsOn ? el('span', {className: 'muted', 'data-depends-on': ''}, ' ← ' + dependsOnText(task.dependsOn)) : null);
  return el('div', {className: 'task-row' + (task.id === store.pickedTask ? ' picked' : ''), 'data-task-id': task.id, 'data-key': task.id,
    title: task.commandLine || '',
    onclick: event => { if (!event.target.closest('button')) showTaskDetail(task); }},
  idCell, el('span', {}, taskBadge(task, job)),
  el('span', {'data-node-id': task.nodeId || '', title: (task.nodeIds || []).map(id => nodeName(job.info.poolId, id) + ': ' + id).join('\n')},
    nodeName(job.info.poolId, task.nodeId) + extra),
  el('span', {'data-exit-code': String(exit), title: task.failure || ''}, String(exit) + (task.failure ? ' · ' + task.failure : '')),
  el('span', {}, duration),
  el('span', {}, task.retryCount + (task.requeueCount ? ' / ' + task.requeueCount + ' requeued' : '')),
  el('span', {}, ...taskFileButtons(jobId, task)));
}

function showTaskDetail(task) {
  store.pickedTask = task.id;
  store.pickedTaskJob = store.selectedJob;
  renderAll(true);
}

// The state word of a task the picked one depends on (it may not have been added yet).
function parentText(job, id) {
  const parent = job.tasks.get(id) || [...job.tasks.values()].find(task => task.id.toLowerCase() === id.toLowerCase());
  if (!parent) return id + ' (not added yet)';
  const state = parent.state === 'completed' ? (parent.result === 'failure' ? '✗ failed' : '✓ succeeded')
    : isWaiting(job, parent) ? '◷ waiting' : TASK_LABELS[parent.state] || parent.state;
  return id + ' ' + state;
}

function rangeText(job, range) {
  let completed = 0;
  let known = 0;
  for (const task of job.tasks.values()) {
    if (!/^[0-9]+$/.test(task.id) || String(+task.id) !== task.id || +task.id < range.start || +task.id > range.end) continue;
    known += 1;
    if (task.state === 'completed') completed += 1;
  }
  return range.start + '–' + range.end + ' (' + completed + ' of ' + (range.end - range.start + 1) + ' completed' +
    (known < range.end - range.start + 1 ? ', ' + (range.end - range.start + 1 - known) + ' not added yet' : '') + ')';
}

function instanceRow(poolId, label, run) {
  const exit = run.exitCode === null || run.exitCode === undefined ? '—' : String(run.exitCode);
  const state = run.state === 'completed' ? (run.result === 'failure' ? '✗ failed' : '✓ succeeded') : TASK_LABELS[run.state] || run.state || '—';
  return el('tr', {'data-subtask': label}, el('td', {}, label), el('td', {}, state), el('td', {title: run.nodeId || ''}, nodeName(poolId, run.nodeId)),
    el('td', {}, exit + (run.failure ? ' · ' + run.failure : '')),
    el('td', {}, run.start ? seconds((run.end || Date.now()) - run.start) : '—'));
}

// The picked task: what it depends on (and how far they are), a multi-instance task's primary and subtasks.
function renderTaskDetail(job) {
  const box = document.getElementById('task-detail');
  const task = job && store.pickedTask && store.pickedTaskJob === job.info.id ? job.tasks.get(store.pickedTask) : null;
  box.hidden = !task;
  if (!task) { morphChildren(box, []); return; }
  const parts = [el('p', {className: 'detail-head'}, el('strong', {}, 'Task ' + task.id), ' ', taskBadge(task, job),
    task.nodeId ? ' on ' + nodeName(job.info.poolId, task.nodeId) + ' (' + task.nodeId + ')' : '', task.exitCode !== null && task.exitCode !== undefined ? ', exit code ' + task.exitCode : '',
    el('button', {className: 'link close', type: 'button', title: 'close the task detail', onclick: () => {
      store.pickedTask = null; renderAll(true);
    }}, 'close'))];
  if (task.dependsOn) {
    const items = task.dependsOn.taskIds.map(id => el('li', {'data-parent': id}, parentText(job, id)))
      .concat(task.dependsOn.taskIdRanges.map(range => el('li', {'data-range': range.start + '-' + range.end}, 'ids ' + rangeText(job, range))));
    if (task.dependsOn.taskIdCount > task.dependsOn.taskIds.length) {
      items.push(el('li', {}, 'and ' + (task.dependsOn.taskIdCount - task.dependsOn.taskIds.length) + ' more ids'));
    }
    const waiting = isWaiting(job, task);
    parts.push(el('p', {'data-dependency-state': waiting ? 'waiting' : task.state === 'active' ? 'met' : task.state},
      waiting ? WAITING_LABEL + ': it starts when every task below has completed and satisfied it.'
        : task.state === 'active' ? 'Its dependencies are met: it is queued.' : 'Its dependencies were met.'),
    el('ul', {className: 'depends-on'}, ...items));
  }
  if (task.instances) {
    const subtasks = task.subtasks || [];
    parts.push(el('p', {}, 'Multi-instance: ' + task.instances + ' instances — the primary runs the command line, ' +
      (task.instances - 1) + ' subtask(s) run the coordination command on nodes of their own' + (subtasks.length ? '.' : ' (not started yet).')),
    el('table', {className: 'subtasks'}, el('thead', {}, el('tr', {}, ...['instance', 'state', 'node', 'exit', 'duration'].map(h => el('th', {}, h)))),
      el('tbody', {}, instanceRow(job.info.poolId, 'primary', task),
        ...subtasks.map(subtask => instanceRow(job.info.poolId, 'subtask ' + subtask.id, subtask)))));
  }
  if (!task.dependsOn && !task.instances) parts.push(el('p', {className: 'muted'}, task.commandLine || ''));
  morphChildren(box, parts);
}

const taskView = {first: -1, count: -1, version: -1};

function renderTaskRows(force) {
  const job = selectedJob();
  const rows = document.getElementById('task-rows');
  if (!job) { morphChildren(rows, []); return; }
  const changed = refilter(job);
  const viewport = document.getElementById('task-viewport');
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - 5);
  const count = Math.ceil(viewport.clientHeight / ROW_HEIGHT) + 10;
  const running = taskList.filtered.slice(first, first + count).some(task => task.state === 'running');
  if (!force && !changed && !running && first === taskView.first && count === taskView.count) return;
  Object.assign(taskView, {first, count});
  rows.style.top = first * ROW_HEIGHT + 'px';
  const now = Date.now();
  morphChildren(rows, taskList.filtered.slice(first, first + count).map(task => taskRow(job, task, now)));
}

function renderNodeFilter(job) {
  const select = document.getElementById('filter-node');
  const pool = store.pools.find(item => item.id === job.info.poolId);
  const ids = pool ? pool.nodes.map(node => node.id) : [];  // in the order of their numbers
  const key = ids.join(',');
  if (select.dataset.key === key) return;
  const value = select.value;
  select.dataset.key = key;
  select.replaceChildren(el('option', {value: ''}, 'all'), ...ids.map(id => el('option', {value: id}, nodeName(pool.id, id) + ' (' + shortId(id) + ')')));
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

// A request's row: built once (a request does not change), then only its selection is set.
function requestRow(entry) {
  if (!entry.row) {
    const query = Object.entries(entry.query).filter(([key]) => key !== 'api-version').map(([key, value]) => key + '=' + value).join('&');
    entry.row = el('tr', {className: 'request', 'data-seq': entry.seq, 'data-key': 'request-' + entry.seq,
      'data-operation': entry.operation || '', tabindex: 0, onclick: () => showRequest(entry.seq)},
    el('td', {}, entry.time.slice(11, 19)),
    el('td', {title: entry.method + ' ' + entry.path + (query ? '?' + query : '')}, entry.operation || '(no operation)',
      el('span', {className: 'path'}, entry.method + ' ' + entry.path + (query ? '?' + query : ''))),
    statusCell(entry.status), el('td', {}, entry.ms));
  }
  entry.row.classList.toggle('selected', entry.seq === store.selectedRequest);
  return entry.row;
}

function renderRequests() {
  const resource = document.getElementById('filter-resource').value;
  const grouped = document.getElementById('group-steps').checked;
  const shown = store.requests.filter(entry => !resource || entry.resource === resource);
  // Runs of one step, oldest first; each step's row is keyed by its oldest request, so newer ones join it in place.
  const groups = [];
  for (const entry of shown) {
    const last = groups[groups.length - 1];
    if (last && (!grouped || last.step === entry.step)) last.entries.push(entry);
    else groups.push({step: entry.step, first: entry.seq, entries: [entry]});
  }
  const rows = [];
  for (const group of groups.reverse()) {  // latest first
    if (grouped) {
      const title = group.step ? STEPS[group.step] + ' — inferred from the operations' : 'Before any tutorial step was seen';
      rows.push(el('tr', {className: 'step', 'data-step': String(group.step || ''), 'data-key': 'step-' + group.first},
        el('td', {colspan: 4}, title)));
    }
    for (let index = group.entries.length - 1; index >= 0; index -= 1) rows.push(requestRow(group.entries[index]));
  }
  morphChildren(document.querySelector('#requests tbody'), rows);
  document.getElementById('requests-shown').textContent = shown.length + ' of ' + store.requests.length + ' requests';
  document.getElementById('requests-panel').classList.toggle('has-detail', store.selectedRequest !== null);
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
    morphChildren(container, [el('p', {className: 'muted'}, storage.error ||
      'Not connected to a storage account (start the emulator with --storage-connection-string).')]);
    return;
  }
  if (!storage.containers.length) { morphChildren(container, [el('p', {className: 'muted'}, 'No containers.')]); return; }
  const filter = document.getElementById('filter-blob').value.trim().toLowerCase();
  const limit = 200;  // blobs drawn per container; the filter finds the others
  morphChildren(container, storage.containers.map(item => {
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
  renderTaskDetail(job);
  renderTaskRows(force);
}

// Nothing is redrawn between the press and the release of a click (a row inserted above would move the one pressed
// away from under the pointer): an update that comes meanwhile is merged, and drawn once the click has happened.
const press = {held: false, missed: false};

function pressed() {
  press.held = true;
}

function released() {
  if (!press.held) return;
  press.held = false;
  if (!press.missed) return;
  press.missed = false;
  setTimeout(() => { renderAll(false); renderRequests(); });  // after the click event this release makes
}

async function refreshBatch() {
  try {
    const overview = await getJson('/portal/api/overview?since=' + encodeURIComponent(store.token));
    const requests = await getJson('/portal/api/requests?since=' + encodeURIComponent(store.requestToken));
    const started = performance.now();
    applyOverview(overview);
    const newRequests = applyRequests(requests);
    if (press.held) {
      press.missed = true;
      window.portalStats.deferred += 1;
    } else {
      renderAll(false);
      if (newRequests) renderRequests();
    }
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
  document.addEventListener('pointerdown', pressed, true);
  for (const name of ['pointerup', 'pointercancel', 'dragend']) document.addEventListener(name, released, true);
  window.addEventListener('blur', released);
  renderTimelineLegend();
}

wire();
loop(refreshBatch, POLL_MS);
loop(refreshStorage, 2 * POLL_MS);
