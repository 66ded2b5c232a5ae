// jobq dashboard: a single page over the JSON API, no framework and no build step. This module
// routes (#/page), refreshes the visible page every 3 s while the tab is visible, runs the
// actions and starts it all.
//
// A page's body is rendered afresh from each load and morphed into the DOM (rows keyed by
// data-key), so a refresh changes only what changed: no flicker, focus and selection kept.
// Actions are buttons with data-action (state changes, left out for a read-only token) or
// data-ui (local: copy, paging), handled by one click listener.
import {
  $, h, morphChildren, fmtN, enc, token, access, setAccess, setToken, hooks, go, api, get, post,
  showError, notice, clearBanner, closed, confirmDialog, askToken,
} from './lib.js';
import { bulkBody, BULK, curlFor, PAGES, NAV } from './pages.js';

// ---- routing and refreshing ---------------------------------------------------------
const REFRESH_MS = 3000;
let current = null;
let timer = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
  const params = new URLSearchParams(qs || '');
  if (!parts.length) return null;
  if (parts.length === 2 && parts[0] === 'jobs') return { page: 'job', id: parts[1], params };
  if (parts.length === 2 && parts[0] === 'workflows') return { page: 'workflow', id: parts[1], params };
  if (parts.length === 1 && PAGES[parts[0]] && !NAV[parts[0]] && parts[0] !== 'notfound') return { page: parts[0], params };
  return { page: 'notfound', params };
}

function route(force) {
  const r = parseHash();
  if (!r) { location.replace('#/overview'); return; }
  if (!force && current && current.hash === location.hash) return;
  stopPolling();
  const def = PAGES[r.page];
  const main = h('main', { 'data-page': r.page, 'data-id': r.id, 'aria-busy': 'true' });
  const ctx = { route: r, main, body: h('div', { class: 'page-body' }), state: {} };
  main.append(h('h1', {}, def.title(ctx)));
  if (def.setup) def.setup(ctx);
  main.append(ctx.body);
  $('#content').replaceChildren(main);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === (NAV[r.page] || r.page)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${def.title(ctx)} · jobq`;
  clearBanner('refresh');
  current = { def, ctx, hash: location.hash, busy: false, again: false };
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  const cur = current;
  if (!cur) return;
  if (cur.busy) { cur.again = true; return; }
  cur.busy = true;
  let ok = false;
  try {
    const data = await cur.def.load(cur.ctx);
    if (cur !== current) return;
    const next = h('div', { class: 'page-body' }, cur.def.render(data, cur.ctx));
    morphChildren(cur.ctx.body, next);
    cur.ctx.main.setAttribute('data-ready', '1');
    cur.ctx.main.removeAttribute('aria-busy');
    clearBanner('refresh');
    ok = true;
  } catch (e) {
    if (cur === current && e.status !== 401) showError(e, 'refresh');
  } finally {
    cur.busy = false;
    if (cur === current && !$('#login').open) {
      if (cur.again) { cur.again = false; refresh(); } else if (document.visibilityState === 'visible') {
        timer = setTimeout(refresh, ok ? REFRESH_MS : REFRESH_MS * 2);
      }
    }
  }
}
function stopPolling() { clearTimeout(timer); timer = 0; }

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh();
  else stopPolling();
});
window.addEventListener('hashchange', () => route(false));

// ---- actions ------------------------------------------------------------------------
const path = (kind, name, verb) => `/${kind}/${enc(name)}${verb ? `/${verb}` : ''}`;
function toggle(kind, label, verb) {
  return async (b) => { await post(path(kind, b.dataset.name, verb)); return `${label} ${b.dataset.name} ${verb === 'pause' ? 'paused' : 'resumed'}.`; };
}
// One bulk action over the whole selection: a retry or delete that stops at the server's bound
// goes on from its cursor (a cancellation has none: the jobs it took no longer match), all with
// the first call's as_of, for at most 50 calls.
async function bulkCalls(name, body) {
  let total = 0;
  let r = null;
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    r = await post(`/jobs/${name}`, cursor ? { ...body, cursor } : body);
    total += r.matched;
    if (!r.more || (body.dry_run && !r.next_cursor)) break;
    cursor = r.next_cursor || null;
    if (!body.as_of) body = { ...body, as_of: r.as_of };
  }
  return { ...r, matched: total };
}
async function bulk(name) {
  const b = BULK[name];
  const body = bulkBody(current.ctx.state.filter);
  const dry = await bulkCalls(name, { ...body, dry_run: true });
  if (!dry.matched) return `No job matches: nothing to ${name}.`;
  const n = `${fmtN(dry.matched)}${dry.more ? '+' : ''}`;
  const ok = await confirmDialog(`${b.verb} ${n} jobs?`,
    `${n} job(s) match this filter now. Only these are ${b.done}: jobs that match later are left alone.`, `${b.verb} ${n}`);
  if (!ok) return null;
  const r = await bulkCalls(name, { ...body, dry_run: false, as_of: dry.as_of });
  return `${fmtN(r.matched)} job(s) ${b.done}${r.more ? '; more match: run it again for the rest' : ''}.`;
}
async function group(verb, fp) {
  const method = verb === 'retry' ? 'POST' : 'DELETE';
  const url = verb === 'retry' ? `/dlq/groups/${fp}/retry` : `/dlq/groups/${fp}`;
  const dry = await api(method, `${url}?dry_run=true`);
  if (!dry.count) return 'This group has no jobs left.';
  const ok = await confirmDialog(`${verb === 'retry' ? 'Retry' : 'Delete'} ${fmtN(dry.count)} jobs?`,
    `${fmtN(dry.count)} failed job(s) of this cause, filed up to ${dry.as_of}. Jobs that fail the same way from now on are left alone.`,
    verb === 'retry' ? 'Retry them' : 'Delete them');
  if (!ok) return null;
  const r = await api(method, `${url}?as_of=${enc(dry.as_of)}`);
  return verb === 'retry' ? `${fmtN(r.retried)} job(s) sent back to their queues.` : `${fmtN(r.deleted)} job(s) deleted.`;
}
async function editLimits(name) {
  const l = await get(path('queues', name, 'limits'));
  const f = $('#limits-form');
  const set = (k, v) => { f.elements[k].value = v === null || v === undefined ? '' : v; };
  const g = l.group || {};
  set('concurrency', l.concurrency); set('rate_limit', l.rate && l.rate.limit); set('rate_period', l.rate && l.rate.period_secs);
  set('group_concurrency', g.concurrency); set('group_rate_limit', g.rate && g.rate.limit); set('group_rate_period', g.rate && g.rate.period_secs);
  $('#limits-title').textContent = `Limits of queue ${name}`;
  const d = $('#limits');
  d.returnValue = '';
  d.showModal();
  if (!(await closed(d))) return null;
  const v = (k) => (f.elements[k].value.trim() === '' ? null : Number(f.elements[k].value));
  const rate = (a, b) => (v(a) === null && v(b) === null ? null : { limit: v(a), period_secs: v(b) });
  const gc = v('group_concurrency'), gr = rate('group_rate_limit', 'group_rate_period');
  await api('PUT', path('queues', name, 'limits'), {
    concurrency: v('concurrency'), rate: rate('rate_limit', 'rate_period'),
    group: gc === null && gr === null ? null : { concurrency: gc, rate: gr },
  });
  return `Limits of queue ${name} saved.`;
}

const ACTIONS = {
  'pause-queue': toggle('queues', 'Queue', 'pause'),
  'resume-queue': toggle('queues', 'Queue', 'resume'),
  'pause-type': toggle('types', 'Type', 'pause'),
  'resume-type': toggle('types', 'Type', 'resume'),
  'pause-schedule': toggle('schedules', 'Schedule', 'pause'),
  'resume-schedule': toggle('schedules', 'Schedule', 'resume'),
  'trigger-schedule': async (b) => { const r = await post(path('schedules', b.dataset.name, 'trigger')); return `Schedule ${b.dataset.name} made job ${r.job_id}.`; },
  'limits-queue': (b) => editLimits(b.dataset.name),
  'bulk-retry': () => bulk('retry'),
  'bulk-delete': () => bulk('delete'),
  'bulk-cancel': () => bulk('cancel'),
  'retry-group': (b) => group('retry', b.dataset.fp),
  'delete-group': (b) => group('delete', b.dataset.fp),
  'cancel-job': async (b) => {
    if (!(await confirmDialog('Cancel this job?', 'A waiting or pending job is cancelled at once; a running one is told to stop.', 'Cancel the job'))) return null;
    const r = await post(path('jobs', b.dataset.id, 'cancel'));
    return r.status === 'cancelling' ? 'The job is running: its process is stopping it.' : 'Job cancelled.';
  },
  'retry-job': async (b) => { await post(path('dlq', b.dataset.id, 'retry')); return 'Job sent back to its queue.'; },
  'delete-job': async (b) => {
    if (!(await confirmDialog('Delete this job?', 'Its record is removed for good.', 'Delete'))) return null;
    await api('DELETE', path(b.dataset.status === 'failed' ? 'dlq' : 'jobs', b.dataset.id));
    go('#/jobs');
    return 'Job deleted.';
  },
  'cancel-workflow': async (b) => {
    if (!(await confirmDialog('Cancel this workflow?', 'Every node that has not ended is cancelled; running ones are told to stop.', 'Cancel the workflow'))) return null;
    const r = await post(path('workflows', b.dataset.id, 'cancel'));
    return `${r.cancelled} node(s) cancelled, ${r.cancelling} stopping.`;
  },
};
const UI = {
  dismiss: () => clearBanner(),
  signout: () => { setToken(''); current = null; boot(); },
  'next-page': () => { const st = current.ctx.state; st.trail.push(st.cursor); st.cursor = st.next; },
  'first-page': () => { const st = current.ctx.state; st.trail = []; st.cursor = null; },
  'prev-page': () => { const st = current.ctx.state; st.cursor = st.trail.pop() || null; },
  'copy-curl': async () => {
    const st = current.ctx.state;
    st.curl = true;
    if (!st.job) return null;
    try {
      await navigator.clipboard.writeText(curlFor(st.job));
      return 'curl command copied (set JOBQ_TOKEN in your shell).';
    } catch (_) {
      return 'The curl command is shown below: copy it from there.';
    }
  },
};

document.addEventListener('click', async (e) => {
  const b = e.target.closest('button[data-action], button[data-ui]');
  if (!b || b.disabled) return;
  const fn = b.dataset.action ? ACTIONS[b.dataset.action] : UI[b.dataset.ui];
  if (!fn) return;
  e.preventDefault();
  const local = !b.dataset.action;
  if (!local) b.disabled = true;
  try {
    const msg = await fn(b);
    if (msg) notice(msg);
    if (current) refresh();
  } catch (err) {
    if (err.status !== 401) showError(err, 'action');
  } finally {
    b.disabled = false;
  }
});

// ---- start --------------------------------------------------------------------------
function renderWho() {
  $('#who').replaceChildren(
    access.access === 'read_only' ? h('span', { class: 'badge paused', title: 'This token may look but not change anything' }, 'read-only') : '',
    token ? h('button', { type: 'button', 'data-ui': 'signout' }, 'Sign out') : '');
}

async function boot() {
  // GET /access answers without a token ("none" when one is needed and missing or wrong), so
  // the first visit learns it must ask for one without a refused request.
  try {
    const a = await get('/access');
    if (a.access === 'none') {
      askToken(token ? 'the token is wrong: give API_TOKEN, or API_TOKEN_READONLY to look only' : '');
      return;
    }
    setAccess(a);
  } catch (e) {
    if (e.status === 401) return;
    if (e.status === 404) setAccess({ access: 'full', token_required: Boolean(token) });
    else showError(e, 'refresh');
  }
  renderWho();
  current = null;
  route(true);
}
hooks.stop = stopPolling;
hooks.boot = boot;
hooks.route = route;
boot();
