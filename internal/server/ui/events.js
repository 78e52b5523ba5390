// Live events: messages of the chosen channels over the WebSocket
// /v1/ws, newest first, with pause and a bounded history; and a form to
// publish a test message.
import { api, openSocket, ensureKey } from './api.js';
import { h, clear, pretty, toast } from './dom.js';

export const HISTORY = 500;

export function events(main, params) {
  let ws = null;
  let wanted = [];
  let paused = false;
  let held = 0; // messages received while paused
  let stopped = false;
  let retry;
  let backoff = 500;
  const history = []; // newest last, at most HISTORY
  let drawing = false; // a render is scheduled

  const chans = h('input', { id: 'channels', type: 'text', value: params.get('channels') || 'events', autocomplete: 'off', spellcheck: 'false' });
  const state = h('span', { id: 'ws-state', class: 'badge', text: 'disconnected' });
  const pauseBtn = h('button', { type: 'button', id: 'pause-events', 'aria-pressed': 'false', onclick: togglePause, text: 'Pause' });
  const counter = h('p', { class: 'muted small', id: 'event-count', 'aria-live': 'polite' });
  const list = h('ol', { class: 'entries events', id: 'messages', reversed: true });

  const pubChan = h('input', { id: 'pub-channel', type: 'text', value: (params.get('channels') || 'events').split(',')[0], autocomplete: 'off' });
  const pubData = h('textarea', { id: 'pub-data', rows: 3, spellcheck: 'false', text: '{"hello": "world"}' });
  const pubErr = h('p', { class: 'error', role: 'alert' });

  main.append(
    h('h1', { text: 'Live events' }),
    h('form', { class: 'bar', onsubmit: (e) => { e.preventDefault(); watch(); } },
      h('div', { class: 'field inline grow' }, h('label', { for: 'channels', text: 'Channels (comma-separated)' }), chans),
      h('button', { class: 'primary', id: 'watch', text: 'Watch' }),
      pauseBtn,
      h('button', { type: 'button', onclick: () => { history.length = 0; held = 0; render(); }, text: 'Clear' }),
      state),
    counter, list,
    h('section', { 'aria-labelledby': 'pub-h' },
      h('h2', { id: 'pub-h', text: 'Publish a test message' }),
      h('form', { class: 'publish', onsubmit: publish },
        h('div', { class: 'field' }, h('label', { for: 'pub-channel', text: 'Channel' }), pubChan),
        h('div', { class: 'field' }, h('label', { for: 'pub-data', text: 'Message (JSON)' }), pubData),
        pubErr,
        h('div', { class: 'buttons' }, h('button', { class: 'primary', id: 'publish', text: 'Publish' })))));

  function parseChannels() {
    return chans.value.split(',').map((c) => c.trim()).filter(Boolean);
  }

  async function watch() {
    const next = parseChannels();
    if (ws && ws.readyState === WebSocket.OPEN) {
      const add = next.filter((c) => !wanted.includes(c));
      const drop = wanted.filter((c) => !next.includes(c));
      if (drop.length) ws.send(JSON.stringify({ type: 'unsubscribe', channels: drop }));
      if (add.length) ws.send(JSON.stringify({ type: 'subscribe', channels: add }));
      wanted = next;
      setState('watching ' + wanted.join(', '));
      return;
    }
    wanted = next;
    connect();
  }

  async function connect() {
    clearTimeout(retry);
    if (stopped) return;
    try { await ensureKey(); } catch (e) { setState('not connected: ' + e.message); return; }
    if (stopped) return;
    setState('connecting');
    const sock = openSocket(wanted);
    ws = sock;
    sock.onopen = () => { backoff = 500; setState(wanted.length ? 'watching ' + wanted.join(', ') : 'connected'); };
    sock.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'pong') return;
      if (m.type === 'error') { toast('Events: ' + m.error, true); return; }
      if (m.type === 'gap') { add({ channel: m.channel, gap: true }); return; }
      add({ channel: m.channel, data: m.data });
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (stopped) return;
      setState(`disconnected (${ev.code}${ev.reason ? ': ' + ev.reason : ''}); retrying`);
      retry = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  function add(m) {
    m.at = new Date();
    history.push(m);
    if (history.length > HISTORY) history.splice(0, history.length - HISTORY);
    if (paused) { held++; counter.textContent = `${history.length} messages kept; ${held} arrived while paused.`; return; }
    // Many messages a second are drawn together, at most 10 times a
    // second, not once each.
    if (!drawing) { drawing = true; setTimeout(() => { drawing = false; if (!paused) render(); }, 100); }
  }

  function render() {
    clear(list);
    for (let i = history.length - 1; i >= 0; i--) {
      const m = history[i];
      list.appendChild(h('li', { class: m.gap ? 'gap' : '' },
        h('div', { class: 'meta' }, h('time', { datetime: m.at.toISOString(), text: m.at.toLocaleTimeString() }), h('code', { text: m.channel })),
        m.gap ? h('p', { class: 'muted', text: 'The engine subscription was interrupted: messages may have been missed.' }) : pretty(m.data)));
    }
    counter.textContent = `${history.length} messages (the last ${HISTORY} are kept).`;
  }

  function togglePause() {
    paused = !paused;
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
    if (!paused) { held = 0; render(); }
  }

  function setState(s) { state.textContent = s; }

  async function publish(e) {
    e.preventDefault();
    pubErr.textContent = '';
    let data;
    try { data = JSON.parse(pubData.value); } catch (err) { pubErr.textContent = 'Not JSON: ' + err.message; pubData.focus(); return; }
    const ch = pubChan.value.trim();
    if (!ch) { pubErr.textContent = 'Give a channel.'; pubChan.focus(); return; }
    try {
      const r = await api('POST', '/v1/channels/' + encodeURIComponent(ch) + '/messages', data);
      toast(`Published to ${ch}: ${r.receivers} receiver(s).`);
    } catch (err) { pubErr.textContent = err.message; }
  }

  render();
  watch();
  return () => { stopped = true; clearTimeout(retry); if (ws) { const s = ws; ws = null; s.close(1000); } };
}
