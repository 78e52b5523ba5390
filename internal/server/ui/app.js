// The dashboard's router: #/ (queues), #/queue/NAME, #/events, #/lookup.
import { serviceURL } from './api.js';
import { clear } from './dom.js';
import { overview } from './overview.js';
import { queuePage } from './queue.js';
import { events } from './events.js';
import { lookup } from './lookup.js';

let unmount = () => {};

function route() {
  const main = document.getElementById('main');
  unmount();
  clear(main);
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  let nav = 'overview';
  if (path.startsWith('/queue/')) {
    unmount = queuePage(main, decodeURIComponent(path.slice('/queue/'.length)));
    document.title = decodeURIComponent(path.slice('/queue/'.length)) + ' · Sluice';
  } else if (path === '/events') {
    nav = 'events';
    unmount = events(main, params);
    document.title = 'Events · Sluice';
  } else if (path === '/lookup') {
    nav = 'lookup';
    unmount = lookup(main);
    document.title = 'Cache and locks · Sluice';
  } else {
    unmount = overview(main, params);
    document.title = 'Queues · Sluice';
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

// health shows the engine and the service's health in the header.
async function health() {
  const el = document.getElementById('engine');
  try {
    const r = await fetch(serviceURL('/health'), { cache: 'no-store', credentials: 'omit' });
    const hl = await r.json();
    const parts = [hl.engine];
    if (hl.redis_version) parts.push(hl.redis_version);
    if (hl.topology && hl.topology !== hl.engine) parts.push(hl.topology);
    el.textContent = parts.join(' ') + ' · ' + hl.status;
    el.className = 'engine ' + (hl.status === 'healthy' ? 'ok' : 'bad');
  } catch {
    el.textContent = 'service unreachable';
    el.className = 'engine bad';
  }
  setTimeout(health, 10000);
}

window.addEventListener('hashchange', () => { route(); document.getElementById('main').focus({ preventScroll: true }); });
route();
health();
