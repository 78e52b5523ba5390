// Building the page. Every text from the service (names, items, errors)
// goes in through textContent or attribute setters: never as markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtNum(n) {
  if (n === undefined || n === null) return '–';
  return Number(n).toLocaleString('en-US');
}

export function fmtRate(r) {
  if (r === undefined || r === null || Number.isNaN(r)) return '–';
  if (r === 0) return '0/s';
  if (r < 10) return r.toFixed(1) + '/s';
  return Math.round(r).toLocaleString('en-US') + '/s';
}

export function fmtTime(s) {
  if (!s) return '–';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return d.toLocaleString();
}

export function fmtAge(seconds) {
  if (seconds === undefined || seconds === null) return '–';
  const s = Math.round(seconds);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}

// pretty renders a JSON value as indented text; a long one is folded in a
// <details> showing its first line.
const SHOW_MAX = 100000; // characters of one value drawn; the rest is counted

export function pretty(value, foldOver = 240) {
  let text;
  try { text = JSON.stringify(value, null, 2); } catch { text = String(value); }
  if (text === undefined) text = String(value);
  if (text.length > SHOW_MAX) text = text.slice(0, SHOW_MAX) + `\n… (${fmtNum(text.length - SHOW_MAX)} more characters not shown)`;
  const pre = h('pre', { class: 'json', text });
  if (text.length <= foldOver) return pre;
  const summary = JSON.stringify(value);
  return h('details', { class: 'fold' },
    h('summary', { text: (summary.length > 120 ? summary.slice(0, 120) + '…' : summary) + ` (${fmtNum(text.length)} chars)` }),
    pre);
}

let toastTimer;
export function toast(msg, isError) {
  const el = document.getElementById('toast');
  el.textContent = msg;
  el.className = 'toast show' + (isError ? ' error' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; }, 5000);
}

// confirm asks with the confirmation dialog; resolves true when confirmed.
export function confirmAction(title, text, okLabel) {
  const dlg = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel || 'Confirm';
  dlg.returnValue = '';
  return new Promise((resolve) => {
    // 'close' is fired after the fact: one from an earlier dialog may
    // arrive while this one is open, and is not this one's answer.
    const onClose = () => {
      if (dlg.open) return;
      dlg.removeEventListener('close', onClose);
      resolve(dlg.returnValue === 'ok');
    };
    dlg.addEventListener('close', onClose);
    dlg.showModal();
  });
}

// poller runs fn now and then every ms after each run ends, never two at
// once: kick() asks for a run now (after the one in progress, if any).
export function poller(fn, ms) {
  let timer = 0, running = false, again = false, stopped = false;
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch { /* fn reports its own failures */ }
    running = false;
    if (stopped) return;
    if (again) { again = false; run(); return; }
    timer = setTimeout(run, ms);
  };
  run();
  return { kick: run, stop: () => { stopped = true; clearTimeout(timer); } };
}
