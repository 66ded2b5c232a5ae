// jobq dashboard, the helpers every page uses: building DOM, morphing it in place, formatting,
// the API (with the token), the banner and the dialogs.
const TOKEN_KEY = 'jobq.token';
const SVGNS = 'http://www.w3.org/2000/svg';
export const STATUSES = ['waiting', 'pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled', 'expired'];
export const ENDED = ['completed', 'failed', 'cancelled', 'expired'];
export const CANCELLABLE = ['waiting', 'pending', 'scheduled', 'running'];

// ---- DOM ----------------------------------------------------------------------------
export const $ = (sel, root = document) => root.querySelector(sel);
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
export const h = (tag, attrs, ...kids) => build(null, tag, attrs, kids);
export const s = (tag, attrs, ...kids) => build(SVGNS, tag, attrs, kids);

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
export function morphChildren(old, neu) {
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
export const fmtN = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
export function dur(secs) {
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
export const when = (iso) => (iso ? h('time', { datetime: iso, title: iso }, ago(iso)) : '—');
export const badge = (status) => h('span', { class: `badge st-${status}` }, status);
export const short = (id) => String(id).slice(0, 8);
export const enc = encodeURIComponent;
export const clip = (text, n) => (text && text.length > n ? `${text.slice(0, n - 1)}…` : text || '');
export const json = (v) => JSON.stringify(v, null, 2);
export const jobLink = (id, text) => h('a', { href: `#/jobs/${enc(id)}`, class: 'mono', title: id }, text || short(id));
function fmtRate(r) { return r ? `${fmtN(r.limit)} per ${dur(r.period_secs)}` : null; }
export function fmtLimits(l) {
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
export let token = sessionStorage.getItem(TOKEN_KEY) || '';
export let access = { access: 'full', token_required: false };
export function setAccess(a) { access = a; }
export function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

// What the router (app.js) lends this module: stop the refresh, start again, go to a page.
export const hooks = { stop() {}, boot() {}, route() {} };
export function go(hash) {
  if (location.hash !== hash) location.hash = hash;
  hooks.route(true);
}
export const canAct = () => access.access === 'full';

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body) {
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
export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);

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
export const showError = (e, source) => banner(e && e.message ? e.message : String(e), 'error', source);
export const notice = (text) => banner(text, 'ok', 'notice');
export function clearBanner(source) {
  if (!source || bannerSource === source) {
    $('#banner').hidden = true;
    bannerSource = null;
  }
}
window.addEventListener('error', (e) => showError(e.message, 'bug'));
window.addEventListener('unhandledrejection', (e) => showError(e.reason, 'bug'));

// ---- dialogs ------------------------------------------------------------------------
export function closed(d) {
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}
export function confirmDialog(title, text, okLabel) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  d.returnValue = '';
  d.showModal();
  return closed(d);
}

export function askToken(message) {
  hooks.stop();
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
  const given = $('#login-token').value.trim();
  if (!given) return;
  setToken(given);
  $('#login').close();
  hooks.boot();
});
