// The dashboard's script: reads the operator endpoints and draws the page for the URL's hash
// (#/, #/jobs?…, #/jobs/<id>, #/clients), so every view and its filters can be shared as a link.
// The admin key lives in sessionStorage only: gone with the tab, never in a URL or localStorage.

const KEY_ITEM = 'ix-admin-key';
const REFRESH_MS = 5_000;
const main = document.getElementById('main');
const logout = document.getElementById('logout');
let refreshTimer = null;
/** Bumped on every navigation: an answer for an older view is dropped. */
let generation = 0;

class Refused extends Error {}

function key() {
  return sessionStorage.getItem(KEY_ITEM);
}

/** The operator endpoint's JSON; a Refused error when the key is missing or wrong. */
async function api(path, options = {}) {
  const headers = { accept: 'application/json' };
  const stored = key();
  if (stored) headers.authorization = `Bearer ${stored}`;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (response.status === 401 || response.status === 403)
    throw new Refused(body?.error?.message ?? 'refused');
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body;
}

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function ms(value) {
  return value === null ? '—' : duration(value / 1000);
}

function statusBadge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

function card(label, value, testId, detail) {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, label),
    h('p', { class: 'figure', 'data-testid': testId }, value),
    detail ? h('p', { class: 'muted' }, detail) : null,
  );
}

function table(headings, rows, label) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'aria-label': label },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headings.map((heading) => h('th', { scope: 'col' }, heading)),
        ),
      ),
      h('tbody', {}, rows.length > 0 ? rows : h('tr', {}, h('td', { colspan: headings.length }, 'None'))),
    ),
  );
}

// ---- login ----

function showLogin(message) {
  stopRefresh();
  logout.hidden = true;
  const input = h('input', {
    type: 'password',
    id: 'admin-key',
    name: 'admin-key',
    autocomplete: 'off',
    required: true,
  });
  const form = h(
    'form',
    {
      class: 'login',
      onsubmit: (event) => {
        event.preventDefault();
        sessionStorage.setItem(KEY_ITEM, input.value.trim());
        route();
      },
    },
    h('h1', {}, 'Log in'),
    h('label', { for: 'admin-key' }, 'Admin key (one of IX_ADMIN_KEYS)'),
    input,
    message ? h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error' }, message) : null,
    h('button', { type: 'submit' }, 'Log in'),
    h('p', { class: 'muted' }, 'Kept for this browser tab only.'),
  );
  show(form);
  input.focus();
}

logout.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_ITEM);
  showLogin(null);
});

// ---- overview ----

function chart(byMinute, generatedAt) {
  const width = 720;
  const height = 180;
  const end = Date.parse(generatedAt);
  const start = end - 3_600_000;
  const minutes = new Map(byMinute.map((m) => [Date.parse(m.minute), m]));
  const slots = [];
  for (let t = Math.floor(start / 60_000) * 60_000; t <= end; t += 60_000) {
    const m = minutes.get(t);
    slots.push({ t, done: m?.done ?? 0, error: m?.error ?? 0 });
  }
  const peak = Math.max(1, ...slots.map((slot) => slot.done + slot.error));
  const barWidth = width / slots.length;
  const bars = [];
  for (const [i, slot] of slots.entries()) {
    const doneHeight = (slot.done / peak) * (height - 20);
    const errorHeight = (slot.error / peak) * (height - 20);
    const x = i * barWidth;
    const title = `${new Date(slot.t).toLocaleTimeString()}: ${slot.done} done, ${slot.error} error`;
    bars.push(
      s(
        'g',
        {},
        s('title', {}, title),
        s('rect', {
          x,
          y: height - doneHeight,
          width: barWidth * 0.8,
          height: doneHeight,
          class: 'bar-done',
        }),
        s('rect', {
          x,
          y: height - doneHeight - errorHeight,
          width: barWidth * 0.8,
          height: errorHeight,
          class: 'bar-error',
        }),
      ),
    );
  }
  return h(
    'figure',
    { class: 'chart' },
    s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Jobs finished per minute, last hour' },
      s('text', { x: 4, y: 12, class: 'axis' }, `${peak}/min`),
      s('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis-line' }),
      ...bars,
    ),
    h(
      'figcaption',
      {},
      'Finished per minute over the last hour: ',
      h('span', { class: 'key done' }, 'done'),
      ' ',
      h('span', { class: 'key error' }, 'error'),
    ),
  );
}

async function overview(mine) {
  const data = await api('/admin/overview');
  if (mine !== generation) return;
  const hour = data.last_hour;
  const rate = hour.failure_rate === null ? '—' : `${(hour.failure_rate * 100).toFixed(1)} %`;
  show(
    h('h1', {}, 'Overview'),
    h('p', { class: 'muted' }, `As of ${when(data.generated_at)}; refreshes every ${REFRESH_MS / 1000} s.`),
    h(
      'div',
      { class: 'cards' },
      card('Pending', data.jobs.pending, 'pending-count'),
      card('Running', data.jobs.running, 'running-count'),
      card('Failed (last hour)', hour.error, 'failed-count', `failure rate ${rate}`),
      card('Oldest pending', duration(data.jobs.oldest_pending_seconds), 'oldest-pending'),
      card(
        'Queue wait',
        `${ms(hour.queue_wait_p50_ms)} / ${ms(hour.queue_wait_p95_ms)}`,
        'queue-wait',
        'p50 / p95, last hour',
      ),
      card('Callbacks', `${data.callbacks.due} due`, 'callbacks', `${data.callbacks.failing} failing`),
      card('Submitted (last hour)', hour.submitted, 'submitted-count', `${hour.done} done`),
    ),
    chart(hour.by_minute, data.generated_at),
    h('h2', {}, 'Workers'),
    table(
      ['Worker', 'Host', 'PID', 'Heartbeat age', 'Jobs held', 'Started'],
      data.workers.map((w) =>
        h(
          'tr',
          {},
          h('td', { class: 'mono' }, w.worker_id.slice(0, 8)),
          h('td', {}, w.hostname),
          h('td', {}, w.pid),
          h('td', {}, duration(w.heartbeat_age_seconds)),
          h('td', {}, w.held),
          h('td', {}, when(w.started_at)),
        ),
      ),
      'Workers',
    ),
  );
  refreshTimer = setTimeout(() => refresh(mine, overview), REFRESH_MS);
}

async function refresh(mine, view) {
  if (mine !== generation) return;
  try {
    await view(mine);
  } catch (error) {
    failed(error);
  }
}

// ---- jobs ----

const FILTERS = ['status', 'client_id', 'request_id', 'ix_id', 'from', 'to'];
const STATUSES = ['', 'pending', 'running', 'done', 'error', 'cancelled'];

/** A datetime-local value as RFC 3339, in the browser's time zone. */
function toIso(local) {
  return local ? new Date(local).toISOString() : '';
}

function toLocal(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

async function jobs(mine, params) {
  const query = new URLSearchParams();
  for (const name of [...FILTERS, 'cursor']) if (params.get(name)) query.set(name, params.get(name));
  const page = await api(`/admin/jobs?${query}`);
  if (mine !== generation) return;
  const field = (name, label, attributes = {}) =>
    h('label', {}, label, h('input', { name, value: params.get(name) ?? '', ...attributes }));
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const next = new URLSearchParams();
        for (const name of FILTERS) {
          const value = String(data.get(name) ?? '').trim();
          if (value) next.set(name, name === 'from' || name === 'to' ? toIso(value) : value);
        }
        location.hash = `#/jobs?${next}`;
      },
    },
    h(
      'label',
      {},
      'Status',
      h(
        'select',
        { name: 'status' },
        STATUSES.map((status) =>
          h('option', { value: status, selected: (params.get('status') ?? '') === status }, status || 'any'),
        ),
      ),
    ),
    field('client_id', 'Client'),
    field('request_id', 'request_id'),
    field('ix_id', 'ix_id starts with', { pattern: '[0-9a-f]{1,16}' }),
    h(
      'label',
      {},
      'Submitted from',
      h('input', { name: 'from', type: 'datetime-local', value: toLocal(params.get('from')) }),
    ),
    h(
      'label',
      {},
      'to',
      h('input', { name: 'to', type: 'datetime-local', value: toLocal(params.get('to')) }),
    ),
    h('button', { type: 'submit' }, 'Search'),
  );
  const rows = page.jobs.map((job) =>
    h(
      'tr',
      {},
      h('td', {}, h('a', { href: `#/jobs/${job.job_id}`, class: 'mono' }, job.ix_id)),
      h('td', {}, job.client_id),
      h('td', { class: 'wrap' }, job.request_id),
      h('td', {}, statusBadge(job.status)),
      h('td', {}, job.attempts),
      h('td', {}, when(job.created_at)),
      h('td', { class: 'wrap' }, job.error ?? ''),
    ),
  );
  let more = null;
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set('cursor', page.next_cursor);
    more = h('a', { href: `#/jobs?${next}`, class: 'button' }, 'Older jobs →');
  }
  show(
    h('h1', {}, 'Jobs'),
    form,
    table(['ix_id', 'Client', 'request_id', 'Status', 'Attempts', 'Submitted', 'Error'], rows, 'Jobs'),
    more,
  );
}

// ---- job detail ----

function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    const ok = document.getElementById('confirm-ok');
    const back = document.getElementById('confirm-back');
    const finish = (answer) => {
      ok.removeEventListener('click', onOk);
      back.removeEventListener('click', onBack);
      dialog.close();
      resolve(answer);
    };
    const onOk = () => finish(true);
    const onBack = () => finish(false);
    ok.addEventListener('click', onOk);
    back.addEventListener('click', onBack);
    dialog.showModal();
  });
}

function json(value) {
  return h('pre', {}, JSON.stringify(value, null, 2));
}

async function jobDetail(mine, jobId) {
  const { job, operator_actions: actions } = await api(`/admin/jobs/${encodeURIComponent(jobId)}`);
  if (mine !== generation) return;
  const act = async (action, text) => {
    if (!(await confirmAction(text))) return;
    try {
      await api(`/admin/jobs/${job.job_id}/${action}`, { method: 'POST' });
    } catch (error) {
      if (error instanceof Refused) throw error;
      notice(error.message);
    }
    route();
  };
  const buttons = [];
  if (job.status === 'error') {
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          onclick: () => act('retry', `Retry job ${job.ix_id} with a fresh budget of attempts?`),
        },
        'Retry',
      ),
    );
  }
  if (job.status === 'pending' || job.status === 'running') {
    buttons.push(
      h(
        'button',
        { type: 'button', class: 'danger', onclick: () => act('cancel', `Cancel job ${job.ix_id}?`) },
        'Cancel',
      ),
    );
  }
  // In the order things happened: submission, each run, what operators did, the end.
  const events = [
    { at: job.created_at, item: h('li', {}, h('strong', {}, 'Submitted'), ` ${when(job.created_at)}`) },
  ];
  for (const run of job.attempt_history) {
    events.push({
      at: run.started_at,
      item: h(
        'li',
        {},
        h('strong', {}, `Attempt ${run.attempt}`),
        ' ',
        statusBadge(run.outcome),
        ` on worker ${run.worker_id ? run.worker_id.slice(0, 8) : 'unknown'}, ${when(run.started_at)}`,
        run.duration_ms === null ? '' : `, ${ms(run.duration_ms)}`,
        run.error ? h('div', { class: 'error wrap' }, run.error) : null,
      ),
    });
  }
  for (const action of actions) {
    events.push({
      at: action.at,
      item: h('li', {}, h('strong', {}, `${action.action} by ${action.by}`), ` ${when(action.at)}`),
    });
  }
  if (job.finished_at) {
    events.push({
      at: job.finished_at,
      item: h(
        'li',
        {},
        h('strong', {}, 'Finished'),
        ' ',
        statusBadge(job.status),
        ` ${when(job.finished_at)}`,
      ),
    });
  }
  const timeline = events.sort((a, b) => Date.parse(a.at) - Date.parse(b.at)).map((event) => event.item);
  const callbacks = (job.callback_attempts ?? []).map((attempt) =>
    h(
      'tr',
      {},
      h('td', {}, attempt.attempt),
      h('td', {}, when(attempt.at)),
      h('td', {}, attempt.status_code ?? '—'),
      h('td', { class: 'wrap' }, attempt.error ?? 'delivered'),
    ),
  );
  show(
    h(
      'h1',
      {},
      'Job ',
      h('span', { class: 'mono', 'data-testid': 'job-ix-id' }, job.ix_id),
      ' ',
      statusBadge(job.status),
    ),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Job id'),
      h('dd', { class: 'mono' }, job.job_id),
      h('dt', {}, 'Client'),
      h('dd', {}, job.client_id),
      h('dt', {}, 'request_id'),
      h('dd', { class: 'wrap', 'data-testid': 'job-request-id' }, job.request_id),
      h('dt', {}, 'Attempts'),
      h('dd', {}, `${job.attempts} charged, budget ${job.max_attempts ?? 'server default'}`),
      h('dt', {}, 'Callback'),
      h(
        'dd',
        { class: 'wrap' },
        job.callback_url ? `${job.callback_url} (${job.callback_status ?? 'pending'})` : 'none',
      ),
    ),
    h('div', { class: 'actions' }, buttons),
    h('h2', {}, 'Timeline'),
    h('ol', { class: 'timeline' }, timeline),
    h('h2', {}, 'Request'),
    json(job.request),
    h('h2', {}, job.response?.error ? 'Error' : 'Response'),
    job.response
      ? json(job.response)
      : h('p', { class: 'muted' }, job.last_error ? `Last error: ${job.last_error}` : 'None yet'),
    h('h2', {}, 'Callback attempts'),
    table(['Attempt', 'At', 'Status code', 'Error'], callbacks, 'Callback attempts'),
  );
  // A job still to end is followed until it does.
  if (job.status === 'pending' || job.status === 'running')
    refreshTimer = setTimeout(() => refresh(mine, (m) => jobDetail(m, jobId)), REFRESH_MS / 2);
}

// ---- clients ----

async function clients(mine) {
  const data = await api('/admin/overview');
  if (mine !== generation) return;
  const rows = data.clients.map((client) =>
    h(
      'tr',
      {},
      h(
        'td',
        {},
        h('a', { href: `#/jobs?client_id=${encodeURIComponent(client.client_id)}` }, client.client_id),
      ),
      h('td', {}, client.pending),
      h('td', {}, client.running),
      h('td', {}, client.submitted_last_hour),
      h('td', {}, client.error_last_hour),
    ),
  );
  show(
    h('h1', {}, 'Clients'),
    h('p', { class: 'muted' }, 'Most pending jobs first, then most submitted in the last hour.'),
    table(['Client', 'Pending', 'Running', 'Submitted (last hour)', 'Failed (last hour)'], rows, 'Clients'),
  );
}

// ---- routing ----

function notice(message) {
  main.prepend(h('p', { class: 'error', role: 'alert' }, message));
}

function failed(error) {
  if (error instanceof Refused) {
    sessionStorage.removeItem(KEY_ITEM);
    showLogin(`Refused: ${error.message}`);
    return;
  }
  show(h('p', { class: 'error', role: 'alert' }, `Could not load: ${error.message}`));
}

function stopRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
}

async function route() {
  stopRefresh();
  const mine = ++generation;
  const [path, search] = location.hash.slice(1).split('?');
  const params = new URLSearchParams(search ?? '');
  const page = path?.startsWith('/jobs') ? 'jobs' : path === '/clients' ? 'clients' : 'overview';
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  logout.hidden = key() === null;
  if (document.body.dataset.keyed === 'true' && key() === null) {
    showLogin(null);
    return;
  }
  try {
    const detail = /^\/jobs\/([0-9a-f-]{36})$/.exec(path ?? '');
    if (detail) await jobDetail(mine, detail[1]);
    else if (page === 'jobs') await jobs(mine, params);
    else if (page === 'clients') await clients(mine);
    else await overview(mine);
  } catch (error) {
    if (mine === generation) failed(error);
  }
}

window.addEventListener('hashchange', route);
route();
