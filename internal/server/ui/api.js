// The /v1 API as the dashboard calls it. The API key, when the service
// asks for one, is kept in sessionStorage (this tab only) and sent as a
// header: never in a URL, never logged.

const KEY = 'sluice.apiKey';

// root is the service's address, found from the page's (it is served at
// ui/ under it), so that the dashboard works behind a proxy that serves
// the service under a path prefix.
const root = new URL('../', location.href);

// serviceURL resolves an absolute service path ("/v1/queues") under root.
export function serviceURL(path) {
  return new URL(path.replace(/^\//, ''), root);
}

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let asking = null; // the pending key prompt, shared by concurrent 401s

export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

// askKey opens the key dialog once, however many requests are refused at
// the same time, and resolves with the key (or rejects when cancelled).
function askKey(wrong) {
  if (asking) return asking;
  const dlg = document.getElementById('key-dialog');
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const err = document.getElementById('key-error');
  const cancel = document.getElementById('key-cancel');
  err.textContent = wrong ? 'That key was refused. Try another.' : '';
  input.value = '';
  asking = new Promise((resolve, reject) => {
    const done = (key) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
      dlg.removeEventListener('close', onClose);
      asking = null;
      if (dlg.open) dlg.close();
      if (key) resolve(key); else reject(new APIError(401, 'an API key is required'));
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      done(key);
    };
    const onCancel = (e) => { e.preventDefault(); done(''); };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    // Closed any other way (form.submit()), it counts as cancelled.
    // ('close' comes after the fact: an earlier prompt's may arrive while
    // this one is open.)
    const onClose = () => { if (!dlg.open && asking) done(''); };
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    input.focus();
  });
  return asking;
}

// api sends a request to the service and decodes its JSON reply. A 401
// asks for a key and retries once with it. Bodies are always JSON.
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json' };
    const key = apiKey();
    if (key) headers['X-API-Key'] = key;
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(serviceURL(path), init);
    if (resp.status === 401 && attempt < 3) {
      if (key) sessionStorage.removeItem(KEY);
      await askKey(Boolean(key));
      continue;
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    if (!resp.ok) {
      const msg = data && typeof data === 'object' && data.error ? data.error : `HTTP ${resp.status}`;
      throw new APIError(resp.status, msg);
    }
    return data;
  }
}

export const q = (name) => '/v1/queues/' + encodeURIComponent(name);

// openSocket opens /v1/ws. The key travels as a subprotocol, which is
// the one header a browser lets a page set on a WebSocket handshake.
export function openSocket(channels) {
  const url = serviceURL('/v1/ws');
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (channels.length) url.search = '?channels=' + channels.map(encodeURIComponent).join(',');
  const protocols = ['sluice'];
  const key = apiKey();
  if (key) protocols.push('sluice.key.' + b64url(key));
  return new WebSocket(url, protocols);
}

function b64url(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// ensureKey makes sure a key is known before a WebSocket opens, when the
// service wants one: a handshake refused with 401 cannot be told from
// other failures in a browser, so a cheap authenticated GET asks first.
export async function ensureKey() {
  await api('GET', '/v1/queues?limit=1');
}
