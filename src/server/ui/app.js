// jobq dashboard: a single page over the JSON API, no framework and no build step.
//
// Each page is { title, setup(ctx), load(ctx) → data, render(data, ctx) → nodes }. The page's
// body is rendered afresh from each load and morphed into the DOM (rows keyed by data-key), so
// a refresh every 3 s changes only what changed: no flicker, focus and selection kept.
// Actions are buttons with data-action (state changes, left out for a read-only token) or
// data-ui (local: copy, paging), handled by one click listener.
'use strict';
(() => {
  const REFRESH_MS = 3000;
  const TOKEN_KEY = 'jobq.token';
  const SVGNS = 'http://www.w3.org/2000/svg';
  const STATUSES = ['waiting', 'pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled', 'expired'];
  const ENDED = ['completed', 'failed', 'cancelled', 'expired'];
  const CANCELLABLE = ['waiting', 'pending', 'scheduled', 'running'];

  // ---- DOM ----------------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);
  function build(ns, tag, attrs, kids) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : String(v));
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) add(el, k);
      else el.append(k instanceof Node ? k : String(k));
    }
  }
  const h = (tag, attrs, ...kids) => build(null, tag, attrs, kids);
  const s = (tag, attrs, ...kids) => build(SVGNS, tag, attrs, kids);

  // Makes `old` look like `neu`, reusing nodes: same tag at the same place, or the same
  // data-key anywhere among the siblings. Form fields keep what the user typed.
  function morph(old, neu) {
    if (old.nodeType !== 1) {
      if (old.nodeValue !== neu.nodeValue) old.nodeValue = neu.nodeValue;
      return;
    }
    for (const a of [...old.attributes]) {
      if (!neu.hasAttribute(a.name) && !(a.name === 'open' && old.tagName === 'DETAILS')) old.removeAttribute(a.name);
    }
    for (const a of neu.attributes) {
      if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
    }
    morphChildren(old, neu);
  }
  const keyOf = (n) => (n.nodeType === 1 && n.getAttribute('data-key')) || null;
  function morphChildren(old, neu) {
    const keyed = new Map();
    for (const c of old.childNodes) if (keyOf(c)) keyed.set(keyOf(c), c);
    let i = 0;
    for (const n of [...neu.childNodes]) {
      const cur = old.childNodes[i] || null;
      const k = keyOf(n);
      const match = k ? keyed.get(k)
        : cur && !keyOf(cur) && cur.nodeType === n.nodeType && cur.nodeName === n.nodeName ? cur : null;
      if (match) {
        if (k) keyed.delete(k);
        if (match !== cur) old.insertBefore(match, cur);
        morph(match, n);
      } else {
        old.insertBefore(n, cur);
      }
      i++;
    }
    while (old.childNodes.length > i) old.lastChild.remove();
  }

  // ---- formatting ---------------------------------------------------------------------
  const fmtN = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  function dur(secs) {
    if (secs === null || secs === undefined) return '—';
    const a = Math.abs(secs);
    if (a < 1) return `${Math.round(a * 1000)} ms`;
    if (a < 90) return `${a < 10 ? a.toFixed(1) : Math.round(a)} s`;
    if (a < 5400) return `${Math.round(a / 60)} min`;
    if (a < 172800) return `${(a / 3600).toFixed(1)} h`;
    return `${Math.round(a / 86400)} d`;
  }
  function ago(iso) {
    if (!iso) return '—';
    const secs = (Date.now() - Date.parse(iso)) / 1000;
    if (Number.isNaN(secs)) return iso;
    if (Math.abs(secs) < 1) return 'now';
    return secs > 0 ? `${dur(secs)} ago` : `in ${dur(-secs)}`;
  }
  const when = (iso) => (iso ? h('time', { datetime: iso, title: iso }, ago(iso)) : '—');
  const badge = (status) => h('span', { class: `badge st-${status}` }, status);
  const short = (id) => String(id).slice(0, 8);
  const enc = encodeURIComponent;
  const clip = (text, n) => (text && text.length > n ? `${text.slice(0, n - 1)}…` : text || '');
  const json = (v) => JSON.stringify(v, null, 2);
  const jobLink = (id, text) => h('a', { href: `#/jobs/${enc(id)}`, class: 'mono', title: id }, text || short(id));
  function fmtRate(r) { return r ? `${fmtN(r.limit)} per ${dur(r.period_secs)}` : null; }
  function fmtLimits(l) {
    if (!l) return '—';
    const parts = [];
    if (l.concurrency) parts.push(`${fmtN(l.concurrency)} at once`);
    if (l.rate) parts.push(fmtRate(l.rate));
    if (l.group) {
      const g = [l.group.concurrency && `${fmtN(l.group.concurrency)} at once`, fmtRate(l.group.rate)].filter(Boolean);
      parts.push(`each group ${g.join(', ')}`);
    }
    if (l.breaker) parts.push('breaker');
    return parts.length ? parts.join('; ') : '—';
  }

  // ---- the API ------------------------------------------------------------------------
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let access = { access: 'full', token_required: false };
  const canAct = () => access.access === 'full';

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `jobq did not answer ${method} ${path} (${e.message}); is it running?`);
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    const message = (data && data.error) || `${method} ${path}: HTTP ${r.status}`;
    if (r.status === 401) {
      askToken(token ? message : '');
      throw new ApiError(401, message);
    }
    if (!r.ok) throw new ApiError(r.status, message);
    return data;
  }
  const get = (path) => api('GET', path);
  const post = (path, body) => api('POST', path, body);

  // ---- banner -------------------------------------------------------------------------
  let bannerSource = null;
  let bannerTimer = 0;
  function banner(text, kind, source) {
    const b = $('#banner');
    $('#banner-text').textContent = text;
    b.className = `banner ${kind}`;
    b.hidden = false;
    bannerSource = source;
    clearTimeout(bannerTimer);
    if (kind === 'ok') bannerTimer = setTimeout(() => clearBanner('notice'), 5000);
  }
  const showError = (e, source) => banner(e && e.message ? e.message : String(e), 'error', source);
  const notice = (text) => banner(text, 'ok', 'notice');
  function clearBanner(source) {
    if (!source || bannerSource === source) {
      $('#banner').hidden = true;
      bannerSource = null;
    }
  }
  window.addEventListener('error', (e) => showError(e.message, 'bug'));
  window.addEventListener('unhandledrejection', (e) => showError(e.reason, 'bug'));

  // ---- dialogs ------------------------------------------------------------------------
  function closed(d) {
    return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
  }
  function confirmDialog(title, text, okLabel) {
    const d = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = okLabel;
    d.returnValue = '';
    d.showModal();
    return closed(d);
  }

  function askToken(message) {
    stopPolling();
    const d = $('#login');
    $('#login-error').textContent = message || '';
    if (!d.open) {
      $('#login-token').value = '';
      d.showModal();
    }
  }
  $('#login').addEventListener('cancel', (e) => e.preventDefault());
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('#login-token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#login').close();
    boot();
  });

  // ---- pages --------------------------------------------------------------------------
  const table = (head, rows, empty) => h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, head.map((c) => (Array.isArray(c) ? h('th', { class: c[1] }, c[0]) : h('th', {}, c))))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, empty)))));
  const num = (v) => h('td', { class: 'num' }, fmtN(v));
  const panel = (title, ...kids) => h('section', { class: 'panel' }, title ? h('h2', {}, title) : null, kids);
  const act = (name, label, attrs, cls) => (canAct()
    ? h('button', { type: 'button', 'data-action': name, class: cls, ...attrs }, label) : null);
  const pausedBadge = (p) => (p ? h('span', { class: 'badge paused' }, 'paused') : h('span', { class: 'muted' }, 'active'));

  // A line chart of `series` (functions of a point, null for no value) over `points`.
  function chart(points, series, opt) {
    const W = 600, H = 180, L = 46, R = 12, T = 10, B = 24;
    let max = 0;
    for (const p of points) for (const f of series) { const v = f(p); if (v !== null && v > max) max = v; }
    max = opt.max || niceCeil(max || 1);
    const x = (i) => L + (points.length < 2 ? 0 : (i * (W - L - R)) / (points.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const kids = [];
    for (const v of [0, max / 2, max]) {
      kids.push(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, opt.fmt(v)));
    }
    const n = points.length;
    for (const i of n ? [0, Math.floor((n - 1) / 2), n - 1] : []) {
      const t = new Date(points[i].at);
      const label = `${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}`;
      kids.push(s('text', { x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, label));
    }
    series.forEach((f, i) => {
      const k = (opt.colours || [0, 1, 2])[i];
      let run = [];
      const flush = () => {
        if (run.length === 1) kids.push(s('circle', { cx: run[0][0], cy: run[0][1], r: 2.5, class: `s${k}`, fill: 'none' }));
        else if (run.length) kids.push(s('polyline', { class: `s${k}`, points: run.map((q) => q.join(',')).join(' ') }));
        run = [];
      };
      points.forEach((p, i) => {
        const v = f(p);
        if (v === null || v === undefined) flush();
        else run.push([x(i).toFixed(1), y(v).toFixed(1)]);
      });
      flush();
    });
    return s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opt.label }, s('title', {}, opt.label), kids);
  }
  function niceCeil(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v);
  }
  const legend = (names, colours) => h('ul', { class: 'legend' }, names.map((n, i) => h('li', { class: `k${(colours || [0, 1, 2])[i]}` }, n)));

  const STAT_CARDS = [['total_jobs', 'accepted'], ['pending_jobs', 'pending'], ['scheduled_jobs', 'scheduled'],
    ['running_jobs', 'running'], ['completed_jobs', 'completed'], ['failed_jobs', 'failed (ever)'], ['dlq_size', 'in the DLQ']];

  const overview = {
    title: () => 'Overview',
    load: async () => {
      const [stats, hist, queues] = await Promise.all([get('/stats'), get('/stats/history?minutes=60'), get('/queues')]);
      return { stats, points: hist.points || [], queues: queues.queues };
    },
    render: ({ stats, points, queues }) => [
      h('div', { class: 'cards' }, STAT_CARDS.map(([k, label]) => h('div', { class: 'card', 'data-stat': k },
        h('span', { class: 'n' }, fmtN(stats[k])), h('span', { class: 'l' }, label)))),
      h('div', { class: 'charts' },
        panel('Throughput, jobs per minute', legend(['created', 'completed', 'failed']),
          chart(points, [(p) => p.created, (p) => p.completed, (p) => p.failed],
            { label: 'Jobs created, completed and failed per minute, last 60 minutes', fmt: (v) => fmtN(Math.round(v)) })),
        panel('Failure rate', legend(['failed of finished'], [2]),
          chart(points, [(p) => ((p.completed || 0) + (p.failed || 0) ? (100 * p.failed) / (p.completed + p.failed) : null)],
            { label: 'Share of finished jobs that failed, per minute', max: 100, colours: [2], fmt: (v) => `${Math.round(v)}%` }))),
      panel('Queue latency', table(['Queue', ['Pending', 'num'], ['Running', 'num'], ['Scheduled', 'num'], ['Oldest ready job waits', 'num'], 'State'],
        queues.map((q) => h('tr', { 'data-key': q.name, 'data-queue': q.name },
          h('td', {}, h('a', { href: `#/jobs?queue=${enc(q.name)}` }, q.name)), num(q.pending), num(q.running), num(q.scheduled),
          h('td', { class: 'num' }, dur(q.latency_secs)), h('td', {}, pausedBadge(q.paused)))),
        'No queue has had a job yet.')),
    ],
  };

  const queuesPage = {
    title: () => 'Queues',
    load: async () => {
      const [q, t] = await Promise.all([get('/queues'), get('/types')]);
      return { queues: q.queues, types: t.types };
    },
    render: ({ queues, types }) => [
      panel('Queues', table(['Queue', ['Pending', 'num'], ['Scheduled', 'num'], ['Waiting', 'num'], ['Running', 'num'],
        ['Failed', 'num'], ['Weight', 'num'], ['Latency', 'num'], 'Limits', 'State', canAct() ? 'Actions' : null].filter(Boolean),
      queues.map((q) => h('tr', { 'data-key': q.name, 'data-queue': q.name },
        h('td', {}, h('a', { href: `#/jobs?queue=${enc(q.name)}` }, q.name)), num(q.pending), num(q.scheduled), num(q.waiting),
        num(q.running), num(q.failed), num(q.weight), h('td', { class: 'num' }, dur(q.latency_secs)),
        h('td', {}, fmtLimits(q.limits)), h('td', {}, pausedBadge(q.paused)),
        canAct() ? h('td', {}, h('div', { class: 'actions' },
          q.paused ? act('resume-queue', 'Resume', { 'data-name': q.name }) : act('pause-queue', 'Pause', { 'data-name': q.name }),
          act('limits-queue', 'Limits…', { 'data-name': q.name }))) : null)),
      'No queue has had a job yet.')),
      panel('Job types', table(['Type', 'Registered', ['Running', 'num'], ['Set aside', 'num'], 'Breaker', 'Limits', 'State', canAct() ? 'Actions' : null].filter(Boolean),
        types.map((t) => h('tr', { 'data-key': t.name, 'data-type': t.name },
          h('td', {}, h('a', { href: `#/jobs?type=${enc(t.name)}` }, t.name)), h('td', {}, t.registered ? 'yes' : 'no'),
          num(t.running), num(t.parked),
          h('td', {}, t.breaker && t.breaker.state !== 'closed' ? `${t.breaker.state}${t.breaker.until ? ` until ${new Date(t.breaker.until).toLocaleTimeString()}` : ''}` : 'closed'),
          h('td', {}, fmtLimits(t.limits)), h('td', {}, pausedBadge(t.paused)),
          canAct() ? h('td', {}, h('div', { class: 'actions' },
            t.paused ? act('resume-type', 'Resume', { 'data-name': t.name }) : act('pause-type', 'Pause', { 'data-name': t.name }))) : null)),
        'No job types.')),
    ],
  };

  // The explorer's filter, from the route's query.
  const FILTERS = ['status', 'queue', 'type', 'group', 'q'];
  function filterOf(params) {
    const f = {};
    for (const k of FILTERS) { const v = (params.get(k) || '').trim(); if (v) f[k] = v; }
    return f;
  }
  function bulkBody(f) {
    const body = {};
    for (const k of ['queue', 'type', 'group', 'q']) if (f[k]) body[k] = f[k];
    if (f.status) body.status = [f.status];
    return body;
  }
  const BULK = {
    retry: { verb: 'Retry', done: 'retried', fits: (st) => !st || st === 'failed' },
    delete: { verb: 'Delete', done: 'deleted', fits: (st) => !st || ENDED.includes(st) },
    cancel: { verb: 'Cancel', done: 'cancelled', fits: (st) => !st || CANCELLABLE.includes(st) },
  };

  const jobsPage = {
    title: () => 'Jobs',
    setup(ctx) {
      const f = filterOf(ctx.route.params);
      ctx.state = { filter: f, cursor: null, trail: [] };
      const input = (name, label, attrs) => h('label', { class: name === 'q' ? 'grow' : null }, label,
        h('input', { name, value: f[name] || '', ...attrs }));
      const form = h('form', { class: 'filters', role: 'search', 'data-ui-form': 'filters' },
        h('label', {}, 'Status', h('select', { name: 'status' }, h('option', { value: '' }, 'any'),
          STATUSES.map((st) => h('option', { value: st, selected: f.status === st }, st)))),
        input('queue', 'Queue', { list: 'dl-queues', autocomplete: 'off' }),
        input('type', 'Type', { list: 'dl-types', autocomplete: 'off' }),
        input('group', 'Group', { autocomplete: 'off' }),
        input('q', 'Search payload, result, error (or $.path=value)', { type: 'search', autocomplete: 'off' }),
        h('button', { type: 'submit', class: 'primary' }, 'Search'),
        h('datalist', { id: 'dl-queues' }), h('datalist', { id: 'dl-types' }));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const p = new URLSearchParams();
        for (const k of FILTERS) { const v = form.elements[k].value.trim(); if (v) p.set(k, v); }
        go(`#/jobs${p.toString() ? `?${p}` : ''}`);
      });
      const bulk = canAct() ? h('div', { class: 'bar' }, h('span', { class: 'muted' }, 'All jobs matching this filter:'),
        Object.entries(BULK).filter(([, b]) => b.fits(f.status)).map(([name, b]) => {
          const needs = name === 'cancel' && !(f.queue || f.type || f.group);
          return h('button', { type: 'button', 'data-action': `bulk-${name}`, class: name === 'retry' ? null : 'danger',
            disabled: needs, title: needs ? 'Cancelling in bulk needs a queue, type or group in the filter' : null }, `${b.verb}…`);
        })) : null;
      ctx.main.append(form, bulk);
      Promise.all([get('/queues'), get('/types')]).then(([q, t]) => {
        form.querySelector('#dl-queues').replaceChildren(...q.queues.map((x) => h('option', { value: x.name })));
        form.querySelector('#dl-types').replaceChildren(...t.types.map((x) => h('option', { value: x.name })));
      }, (e) => { if (e.status !== 401) showError(e, 'refresh'); });
    },
    load: (ctx) => {
      const p = new URLSearchParams(ctx.state.filter);
      p.set('limit', '50');
      if (ctx.state.cursor) p.set('cursor', ctx.state.cursor);
      return get(`/jobs?${p}`);
    },
    render: (data, ctx) => {
      const jobs = data.jobs || [];
      const st = ctx.state;
      st.next = data.next_cursor;
      return panel(null,
        table(['Job', 'Type', 'Queue', 'Status', 'Created', ['Attempts', 'num'], 'Error or result'],
          jobs.map((j) => h('tr', { 'data-key': j.id, 'data-job': j.id },
            h('td', {}, jobLink(j.id)), h('td', {}, j.type), h('td', {}, j.queue), h('td', {}, badge(j.status)),
            h('td', { class: 'nowrap' }, when(j.created_at)), h('td', { class: 'num' }, `${j.attempt}/${j.max_attempts}`),
            h('td', {}, h('span', { class: 'clip', title: j.error || '' },
              j.error || (j.result === null || j.result === undefined ? '' : JSON.stringify(j.result)))))),
          data.cut_short ? 'No match yet in the entries searched so far.' : 'No jobs match.'),
        h('div', { class: 'pager', 'data-cursor': st.cursor || '' },
          st.trail.length > 1 ? h('button', { type: 'button', 'data-ui': 'first-page' }, '⇤ Newest') : null,
          st.cursor ? h('button', { type: 'button', 'data-ui': 'prev-page' }, '← Newer') : null,
          data.cut_short && data.next_cursor
            ? [h('span', { class: 'muted' }, `Searched ${fmtN(data.scanned)} entries, found ${fmtN(jobs.length)}.`),
              h('button', { type: 'button', 'data-ui': 'next-page', class: 'primary' }, 'Continue searching')]
            : data.next_cursor ? h('button', { type: 'button', 'data-ui': 'next-page' }, 'Older →') : null));
    },
  };

  function curlFor(job) {
    const body = { type: job.type, payload: job.payload };
    if (job.queue && job.queue !== 'default') body.queue = job.queue;
    if (job.priority && job.priority !== 'normal') body.priority = job.priority;
    if (job.group) body.group = job.group;
    if (job.max_attempts) body.max_attempts = job.max_attempts;
    if (job.timeout_secs) body.timeout_secs = job.timeout_secs;
    const q = (x) => `'${x.replace(/'/g, "'\\''")}'`;
    return `curl -X POST ${q(`${location.origin}/jobs`)} \\\n  -H "Authorization: Bearer $JOBQ_TOKEN" \\\n`
      + `  -H 'Content-Type: application/json' \\\n  -d ${q(JSON.stringify(body))}`;
  }

  const jobPage = {
    title: (ctx) => `Job ${short(ctx.route.id)}`,
    load: async (ctx) => {
      try {
        return await get(`/jobs/${enc(ctx.route.id)}`);
      } catch (e) {
        if (e.status === 404) return { missing: e.message };
        throw e;
      }
    },
    render: (j, ctx) => {
      if (j.missing) return h('p', { class: 'empty' }, j.missing, ' ', h('a', { href: '#/jobs' }, 'Back to the jobs'));
      ctx.state.job = j;
      const facts = [['Type', j.type], ['Queue', h('a', { href: `#/jobs?queue=${enc(j.queue)}` }, j.queue)], ['Priority', j.priority],
        ['Group', j.group], ['Attempts', `${j.attempt} of ${j.max_attempts}`], ['Created', when(j.created_at)],
        ['Started', when(j.started_at)], ['Ended', when(j.completed_at)], ['Runs at', j.run_at && when(j.run_at)],
        ['Updated', when(j.updated_at)], ['Timeout', j.timeout_secs && dur(j.timeout_secs)], ['Unique key', j.unique_key],
        ['Start deadline', j.expires_at && when(j.expires_at)], ['Schedule', j.schedule && h('a', { href: '#/schedules' }, j.schedule)],
        ['Workflow', j.workflow_id && h('a', { href: `#/workflows/${enc(j.workflow_id)}` }, j.ref || short(j.workflow_id))],
        ['Snoozes', j.snoozes || null], ['Cancel requested', j.cancel_requested ? 'yes' : null]];
      const links = (ids) => (ids && ids.length ? h('ul', { class: 'links' }, ids.map((id) => h('li', { 'data-key': id }, jobLink(id, id)))) : h('p', { class: 'muted' }, 'none'));
      const ended = ENDED.includes(j.status);
      return [
        h('div', { class: 'bar' }, badge(j.status), h('span', { class: 'mono' }, j.id),
          h('div', { class: 'actions' },
            CANCELLABLE.includes(j.status) ? act('cancel-job', 'Cancel', { 'data-id': j.id }, 'danger') : null,
            j.status === 'failed' ? act('retry-job', 'Retry', { 'data-id': j.id }) : null,
            ended ? act('delete-job', 'Delete', { 'data-id': j.id, 'data-status': j.status }, 'danger') : null,
            h('button', { type: 'button', 'data-ui': 'copy-curl' }, 'Copy as curl'))),
        ctx.state.curl ? h('pre', { class: 'curl', 'aria-label': 'curl command' }, curlFor(j)) : null,
        j.waiting ? panel('Why it waits', h('p', {}, h('strong', {}, j.waiting.reason), ': ', j.waiting.detail,
          j.waiting.until ? [' (until ', when(j.waiting.until), ')'] : null)) : null,
        j.progress ? panel('Progress', h('progress', { max: 100, value: j.progress.percent }, `${j.progress.percent}%`),
          h('p', {}, `${j.progress.percent}%`, j.progress.message ? ` · ${j.progress.message}` : '', ' · ', when(j.progress.at))) : null,
        h('div', { class: 'cols' },
          panel('Summary', h('dl', { class: 'facts' }, facts.filter(([, v]) => v !== null && v !== undefined && v !== '')
            .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
          panel('Dependencies', h('h3', { class: 'hint' }, 'Parents'), links(j.parents), h('h3', { class: 'hint' }, 'Children'), links(j.children))),
        h('div', { class: 'cols' },
          panel('Payload', h('pre', {}, json(j.payload))),
          panel('Result', j.result === null || j.result === undefined ? h('p', { class: 'muted' }, 'none') : h('pre', {}, json(j.result)))),
        panel(`Errors (${(j.errors || []).length})`, (j.errors || []).length
          ? h('ol', { class: 'timeline' }, j.errors.map((e) => h('li', { 'data-key': `${e.attempt}-${e.at}` },
            h('div', { class: 'when' }, `attempt ${e.attempt} · `, when(e.at)), h('pre', {}, e.error))))
          : h('p', { class: 'muted' }, j.error || 'No failed attempt.')),
      ];
    },
  };

  const failuresPage = {
    title: () => 'Failures',
    load: () => get('/dlq/groups?limit=100'),
    render: (d) => panel(null,
      h('p', { class: 'bar' }, `${fmtN(d.dlq_size)} jobs in the dead-letter queue, in ${fmtN(d.total_groups)} groups by cause`,
        d.ungrouped ? ` (${fmtN(d.ungrouped)} not grouped yet)` : '', '.'),
      table(['Type', ['Jobs', 'num'], 'Cause', 'First seen', 'Last seen', 'Actions'],
        d.groups.map((g) => h('tr', { 'data-key': g.fingerprint, 'data-group': g.fingerprint },
          h('td', {}, g.type), num(g.count),
          h('td', {}, h('span', { class: 'clip mono', title: g.pattern }, g.pattern), h('span', { class: 'clip muted', title: g.sample_error }, g.sample_error)),
          h('td', { class: 'nowrap' }, when(g.first_seen)), h('td', { class: 'nowrap' }, when(g.last_seen)),
          h('td', {}, h('div', { class: 'actions' },
            h('a', { class: 'button', href: `#/jobs?status=failed&type=${enc(g.type)}` }, 'Jobs'),
            act('retry-group', 'Retry…', { 'data-fp': g.fingerprint }),
            act('delete-group', 'Delete…', { 'data-fp': g.fingerprint }, 'danger'))))),
        'No failed jobs.')),
  };

  const schedulesPage = {
    title: () => 'Schedules',
    load: () => get('/schedules'),
    render: (d) => panel(null, table(['Schedule', 'When', 'Job', 'Next run', 'Last run', ['Fired', 'num'], ['Missed', 'num'], 'Source', 'State', canAct() ? 'Actions' : null].filter(Boolean),
      d.schedules.map((sc) => h('tr', { 'data-key': sc.name, 'data-schedule': sc.name },
        h('td', {}, sc.name), h('td', {}, h('code', {}, sc.cron), h('span', { class: 'muted' }, ` ${sc.timezone}`)),
        h('td', {}, sc.job.type, sc.job.queue ? h('span', { class: 'muted' }, ` in ${sc.job.queue}`) : null),
        h('td', { class: 'nowrap' }, when((sc.next_runs || [])[0])),
        h('td', { class: 'nowrap' }, sc.last_run ? [jobLink(sc.last_run.job_id), ' ', badge(sc.last_run.status || 'gone'), ' ', when(sc.last_run.enqueued_at)] : '—'),
        num(sc.counts && sc.counts.fires), num(sc.counts && sc.counts.misses), h('td', {}, sc.source), h('td', {}, pausedBadge(sc.paused)),
        canAct() ? h('td', {}, h('div', { class: 'actions' },
          sc.paused ? act('resume-schedule', 'Resume', { 'data-name': sc.name }) : act('pause-schedule', 'Pause', { 'data-name': sc.name }),
          act('trigger-schedule', 'Run now', { 'data-name': sc.name }))) : null)),
      'No schedules. Create one with PUT /schedules/{name} or SCHEDULES_FILE.')),
  };

  const workflowsPage = {
    title: () => 'Workflows',
    load: () => get('/workflows?limit=100'),
    render: (d) => panel(null, table(['Workflow', 'Created', ['Nodes', 'num'], ['Unfinished', 'num'], 'State'],
      d.workflows.map((w) => h('tr', { 'data-key': w.id, 'data-workflow': w.id },
        h('td', {}, h('a', { href: `#/workflows/${enc(w.id)}`, class: 'mono' }, w.id)), h('td', { class: 'nowrap' }, when(w.created_at)),
        num(w.nodes), num(w.left), h('td', {}, w.left > 0 ? badge('running') : h('span', { class: 'muted' }, 'ended')))),
      'No workflows. Create one with POST /workflows.')),
  };

  // A layered drawing of a workflow: a node's column is its longest path from a root.
  function dag(nodes) {
    const byRef = new Map(nodes.map((n) => [n.ref, n]));
    const depth = new Map();
    const depthOf = (n, seen) => {
      if (depth.has(n.ref)) return depth.get(n.ref);
      seen.add(n.ref);
      let d = 0;
      for (const p of n.depends_on) {
        const pn = byRef.get(p);
        if (pn && !seen.has(p)) d = Math.max(d, depthOf(pn, seen) + 1);
      }
      depth.set(n.ref, d);
      return d;
    };
    const layers = [];
    for (const n of nodes) { const d = depthOf(n, new Set()); (layers[d] = layers[d] || []).push(n); }
    const row = new Map();
    layers.forEach((layer) => {
      const bary = (n) => {
        const ps = n.depends_on.filter((p) => row.has(p)).map((p) => row.get(p));
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
      };
      layer.sort((a, b) => bary(a) - bary(b) || a.ref.localeCompare(b.ref));
      layer.forEach((n, i) => row.set(n.ref, i));
    });
    const NW = 168, NH = 44, GX = 56, GY = 14, P = 10;
    const at = (n) => [P + depth.get(n.ref) * (NW + GX), P + row.get(n.ref) * (NH + GY)];
    const tall = Math.max(...layers.map((l) => l.length));
    const W = P * 2 + layers.length * (NW + GX) - GX, H = P * 2 + tall * (NH + GY) - GY;
    const edges = [], boxes = [];
    for (const n of nodes) {
      const [cx, cy] = at(n);
      for (const p of n.depends_on) {
        const pn = byRef.get(p);
        if (!pn) continue;
        const [px, py] = at(pn);
        const x1 = px + NW, y1 = py + NH / 2, x2 = cx, y2 = cy + NH / 2, mx = (x1 + x2) / 2;
        edges.push(s('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
      }
      boxes.push(s('a', { href: `#/jobs/${enc(n.job_id)}`, class: `n-${n.status}`, 'data-job': n.job_id },
        s('title', {}, `${n.ref} (${n.type}): ${n.status}${n.error ? ` — ${n.error}` : ''}`),
        s('rect', { x: cx, y: cy, width: NW, height: NH, rx: 6 }),
        s('text', { x: cx + 10, y: cy + 18 }, clip(n.ref, 22)),
        s('text', { x: cx + 10, y: cy + 34, class: 'sub' }, clip(`${n.type} · ${n.status}`, 26))));
    }
    return h('div', { class: 'dag' }, s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': 'Workflow graph' }, edges, boxes));
  }

  const workflowPage = {
    title: (ctx) => `Workflow ${short(ctx.route.id)}`,
    load: (ctx) => get(`/workflows/${enc(ctx.route.id)}`),
    render: (w) => [
      h('div', { class: 'bar' }, badge(w.status), h('span', { class: 'mono' }, w.workflow_id), h('span', { class: 'muted' }, 'created ', when(w.created_at)),
        h('span', {}, Object.entries(w.counts || {}).map(([k, v]) => `${v} ${k}`).join(', ')),
        w.unfinished > 0 ? act('cancel-workflow', 'Cancel workflow', { 'data-id': w.workflow_id }, 'danger') : null),
      w.nodes.length <= 400 ? panel('Graph', dag(w.nodes)) : h('p', { class: 'muted' }, `${w.nodes.length} nodes: too many to draw; listed below.`),
      panel('Nodes', table(['Ref', 'Type', 'Status', 'Depends on', 'Error', 'Job'],
        w.nodes.map((n) => h('tr', { 'data-key': n.job_id, 'data-job': n.job_id },
          h('td', {}, n.ref), h('td', {}, n.type), h('td', {}, badge(n.status)), h('td', {}, n.depends_on.join(', ') || '—'),
          h('td', {}, h('span', { class: 'clip', title: n.error || '' }, n.error || '')), h('td', {}, jobLink(n.job_id)))), 'No nodes.')),
    ],
  };

  const workersPage = {
    title: () => 'Workers',
    load: () => get('/workers'),
    render: (d) => panel(null, table(['Process', 'Role', 'Queues', ['Busy', 'num'], ['Idle', 'num'], ['Heartbeat', 'num'], 'Running jobs', 'Started'],
      d.workers.map((w) => h('tr', { 'data-key': w.id, 'data-worker': w.id },
        h('td', {}, h('span', { class: 'mono' }, w.id), h('div', { class: 'muted' }, `${w.host} · pid ${w.pid}`)), h('td', {}, w.role),
        h('td', {}, Array.isArray(w.queues) ? w.queues.join(', ') : w.queues, w.order ? h('div', { class: 'muted' }, w.order) : null),
        num(w.busy), num(w.idle), h('td', { class: 'num' }, dur(w.heartbeat_age_ms / 1000)),
        h('td', {}, (w.jobs || []).length ? h('ul', { class: 'links' }, w.jobs.map((j) => h('li', { 'data-key': j.id },
          jobLink(j.id), ` ${j.type} in ${j.queue}`, j.progress ? ` · ${j.progress.percent}%` : '', ' · ', when(j.started_at)))) : h('span', { class: 'muted' }, 'idle')),
        h('td', { class: 'nowrap' }, when(w.started_at)))),
      'No live process runs workers.')),
  };

  const notFound = {
    title: () => 'Not found',
    load: async () => null,
    render: () => h('p', {}, 'No such page. ', h('a', { href: '#/overview' }, 'Go to the overview')),
  };

  const PAGES = {
    overview, queues: queuesPage, jobs: jobsPage, job: jobPage, failures: failuresPage, schedules: schedulesPage,
    workflows: workflowsPage, workflow: workflowPage, workers: workersPage, notfound: notFound,
  };
  const NAV = { job: 'jobs', workflow: 'workflows' };

  // ---- routing and refreshing ---------------------------------------------------------
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

  function go(hash) {
    if (location.hash !== hash) location.hash = hash;
    route(true);
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
  async function bulk(name) {
    const b = BULK[name];
    const body = bulkBody(current.ctx.state.filter);
    const dry = await post(`/jobs/${name}`, { ...body, dry_run: true });
    if (!dry.matched) return `No job matches: nothing to ${name}.`;
    const n = `${fmtN(dry.matched)}${dry.more ? '+' : ''}`;
    const ok = await confirmDialog(`${b.verb} ${n} jobs?`,
      `${n} job(s) match this filter now. Only these are ${b.done}: jobs that match later are left alone.`, `${b.verb} ${n}`);
    if (!ok) return null;
    const r = await post(`/jobs/${name}`, { ...body, dry_run: false, as_of: dry.as_of });
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
    signout: () => { sessionStorage.removeItem(TOKEN_KEY); token = ''; current = null; boot(); },
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
    try {
      access = await get('/access');
    } catch (e) {
      if (e.status === 401) return;
      if (e.status === 404) access = { access: 'full', token_required: Boolean(token) };
      else showError(e, 'refresh');
    }
    renderWho();
    current = null;
    route(true);
  }
  boot();
})();
