// jobq dashboard, the pages: each is { title, setup(ctx), load(ctx) → data, render(data, ctx)
// → nodes }, plus the widgets they share (tables, charts, the workflow graph).
import {
  STATUSES, ENDED, CANCELLABLE, h, s, fmtN, dur, when, badge, short, enc, clip, json, jobLink,
  fmtLimits, go, canAct, get, showError,
} from './lib.js';

// ---- widgets --------------------------------------------------------------------------
const table = (head, rows, empty) => h('div', { class: 'table-wrap' }, h('table', {},
  h('thead', {}, h('tr', {}, head.map((c) => (Array.isArray(c) ? h('th', { class: c[1] }, c[0]) : h('th', {}, c))))),
  h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, empty)))));
const num = (v) => h('td', { class: 'num' }, fmtN(v));
export const panel = (title, ...kids) => h('section', { class: 'panel' }, title ? h('h2', {}, title) : null, kids);
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

// ---- pages ----------------------------------------------------------------------------
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
export const FILTERS = ['status', 'queue', 'type', 'group', 'q'];
export function filterOf(params) {
  const f = {};
  for (const k of FILTERS) { const v = (params.get(k) || '').trim(); if (v) f[k] = v; }
  return f;
}
export function bulkBody(f) {
  const body = {};
  for (const k of ['queue', 'type', 'group', 'q']) if (f[k]) body[k] = f[k];
  if (f.status) body.status = [f.status];
  return body;
}
export const BULK = {
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

export function curlFor(job) {
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

export const PAGES = {
  overview, queues: queuesPage, jobs: jobsPage, job: jobPage, failures: failuresPage, schedules: schedulesPage,
  workflows: workflowsPage, workflow: workflowPage, workers: workersPage, notfound: notFound,
};
export const NAV = { job: 'jobs', workflow: 'workflows' };

