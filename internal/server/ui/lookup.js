// Looking up one cache entry or one lock by name. A lock shows whether it
// is held and for how long; never its token.
import { api } from './api.js';
import { h, clear, pretty, fmtTime } from './dom.js';

export function lookup(main) {
  const cacheKey = h('input', { id: 'cache-key', type: 'text', autocomplete: 'off', required: true });
  const cacheOut = h('div', { id: 'cache-result', 'aria-live': 'polite' });
  const lockName = h('input', { id: 'lock-name', type: 'text', autocomplete: 'off', required: true });
  const lockOut = h('div', { id: 'lock-result', 'aria-live': 'polite' });

  main.append(
    h('h1', { text: 'Cache and locks' }),
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'cache-h' },
        h('h2', { id: 'cache-h', text: 'Cache entry' }),
        h('form', { class: 'bar', id: 'cache-form', onsubmit: findCache },
          h('div', { class: 'field inline grow' }, h('label', { for: 'cache-key', text: 'Key' }), cacheKey),
          h('button', { class: 'primary', text: 'Look up' })),
        cacheOut),
      h('section', { 'aria-labelledby': 'lock-h' },
        h('h2', { id: 'lock-h', text: 'Lock' }),
        h('form', { class: 'bar', id: 'lock-form', onsubmit: findLock },
          h('div', { class: 'field inline grow' }, h('label', { for: 'lock-name', text: 'Name' }), lockName),
          h('button', { class: 'primary', text: 'Look up' })),
        lockOut)));

  async function findCache(e) {
    e.preventDefault();
    const k = cacheKey.value;
    clear(cacheOut);
    try {
      const v = await api('GET', '/v1/cache/' + encodeURIComponent(k));
      cacheOut.append(h('p', { text: 'Value:' }), pretty(v, 2000));
    } catch (err) {
      cacheOut.append(h('p', { class: err.status === 404 ? 'muted' : 'error', text: err.status === 404 ? 'No such key (or it expired).' : err.message }));
    }
  }

  async function findLock(e) {
    e.preventDefault();
    const n = lockName.value;
    clear(lockOut);
    try {
      const r = await api('GET', '/v1/locks/' + encodeURIComponent(n));
      lockOut.append(r.held
        ? h('p', null, h('strong', { text: 'Held' }), r.expires_at ? ` until ${fmtTime(r.expires_at)} (${(r.ttl_ms / 1000).toFixed(1)} s left)` : ' (no expiry)')
        : h('p', { class: 'muted', text: 'Not held.' }));
    } catch (err) {
      lockOut.append(h('p', { class: 'error', text: err.message }));
    }
  }
  return () => {};
}
