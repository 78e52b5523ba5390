// One queue: its numbers and rates, declared settings, head items,
// deliveries in flight and both DLQs, with the actions on them.
import { api, q } from './api.js';
import { h, clear, fmtNum, fmtTime, fmtAge, pretty, toast, confirmAction, poller } from './dom.js';
import { record } from './spark.js';
import { rateCell } from './overview.js';

const LIST = 20;

// busy reports whether the user is reading a list: an item unfolded, or
// the focus in it. It is then not redrawn under them.
function busy(list) {
  return Boolean(list.querySelector('details[open]')) || list.contains(document.activeElement);
}

export function queuePage(main, name) {
  let stopped = false;
  let info = null;
  const base = q(name);

  const title = h('h1', null, h('span', { class: 'muted', text: 'Queue ' }), h('span', { id: 'queue-name', text: name }));
  const pausedBadge = h('span', { class: 'badge', hidden: true, text: 'paused' });
  const pauseBtn = h('button', { type: 'button', id: 'pause', onclick: togglePause, text: 'Pause' });
  const clearBtn = h('button', { type: 'button', class: 'danger', id: 'clear-items', onclick: clearItems, text: 'Clear items…' });
  const stats = h('dl', { class: 'stats', id: 'stats' });
  const rateRow = h('div', { class: 'rates' });
  const form = settingsForm();
  const items = section('Items at the head', 'items');
  const inflight = section('In flight', 'deliveries');
  const dlq = dlqSection();

  main.append(
    h('p', null, h('a', { href: '#/', text: '← All queues' })),
    h('div', { class: 'bar' }, title, pausedBadge, h('div', { class: 'actions' }, pauseBtn, clearBtn)),
    stats, rateRow,
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'settings-h' }, h('h2', { id: 'settings-h', text: 'Settings' }), form.el),
      items.el),
    inflight.el, dlq.el);

  let ticks = 0;
  async function load() {
    // The lists follow every third refresh (6 s).
    if (++ticks % 3 === 0) { items.auto(); inflight.auto(); dlq.auto(); }
    try {
      info = await api('GET', base);
      if (stopped) return;
      record(name, info.stats);
      renderInfo();
    } catch (e) {
      if (!stopped) toast('Reading the queue failed: ' + e.message, true);
    }
  }
  let poll;
  const refresh = () => poll.kick();

  function renderInfo() {
    const i = info;
    pausedBadge.hidden = !i.paused;
    pauseBtn.textContent = i.paused ? 'Resume' : 'Pause';
    clear(stats);
    const stat = (k, v, id) => [h('div', { class: 'stat' }, h('dt', { text: k }), h('dd', { text: v, 'data-stat': id }))];
    stats.append(
      ...stat('Length', fmtNum(i.current_length), 'length'),
      ...stat('Oldest item (at least)', i.stats.head_sampled_at && i.current_length > 0 ? fmtAge(i.stats.oldest_age_seconds) : '–', 'oldest'),
      ...stat('Capacity', i.max_size > 0 ? fmtNum(i.max_size) : '∞', 'capacity'),
      ...stat('Fill', i.max_size > 0 ? (i.fill_ratio * 100).toFixed(1) + '%' : '–', 'fill'),
      ...stat('Policy', i.overflow_policy, 'policy'),
      ...stat('In flight', fmtNum(i.in_flight), 'in-flight'),
      ...stat('Scheduled', fmtNum(i.scheduled), 'scheduled'),
      ...stat('Overflow DLQ', fmtNum(i.dlq_length), 'overflow-dlq'),
      ...stat('Failed DLQ', fmtNum(i.failed_length), 'failed-dlq'),
      ...stat('Added (total)', fmtNum(i.stats.added_total), 'added'),
      ...stat('Acked (total)', fmtNum(i.stats.acked_total), 'acked'),
      ...stat('Dead-lettered (total)', fmtNum(i.stats.dead_lettered_total), 'dead'));
    clear(rateRow);
    rateRow.append(h('h2', { class: 'small muted', text: 'Rates while this page is open' }),
      ...[['added_total', 'added', 'Added'], ['delivered_total', 'delivered', 'Delivered'], ['acked_total', 'acked', 'Acked'], ['dead_lettered_total', 'dead-lettered', 'Dead-lettered']]
        .map(([field, col, title]) => h('div', { class: 'rate-item' }, h('span', { class: 'label', text: title }), rateCell(name, field, col, title, 'span'))));
    form.fill(i);
  }

  async function togglePause() {
    const action = info && info.paused ? 'resume' : 'pause';
    try {
      await api('POST', base + '/' + action);
      toast(`Queue ${name} ${action === 'pause' ? 'paused' : 'resumed'}.`);
      refresh();
    } catch (e) { toast(`${action} failed: ${e.message}`, true); }
  }

  async function clearItems() {
    const n = info ? fmtNum(info.current_length) : 'all';
    if (!await confirmAction('Clear the queue?', `This deletes the ${n} items waiting in ${name}. Items in flight and DLQs are kept. It cannot be undone.`, 'Clear items')) return;
    try {
      const r = await api('DELETE', base + '/items');
      toast(r.cleared ? `Cleared the items of ${name}.` : `${name} had no items to clear.`);
      refresh(); items.load(''); 
    } catch (e) { toast('Clear failed: ' + e.message, true); }
  }

  // settingsForm edits the declared settings (PUT replaces them all: a
  // field left empty is no longer declared).
  function settingsForm() {
    const fields = {
      max_size: h('input', { id: 's-max', name: 'max_size', type: 'number', min: -1, max: 2 ** 40, step: 1, inputmode: 'numeric' }),
      policy: h('select', { id: 's-policy', name: 'policy' },
        h('option', { value: '', text: '(not declared)' }), ...['reject', 'dlq', 'drop_oldest'].map((p) => h('option', { value: p, text: p }))),
      pressure_threshold: h('input', { id: 's-pt', name: 'pressure_threshold', type: 'number', min: 0.01, max: 1, step: 0.01 }),
      lease: h('input', { id: 's-lease', name: 'lease', type: 'text', pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$', placeholder: 'e.g. 30s' }),
      max_deliveries: h('input', { id: 's-md', name: 'max_deliveries', type: 'number', min: 1, max: 1000, step: 1, inputmode: 'numeric' }),
    };
    const hints = {};
    const label = { max_size: 'Max size (-1: no bound)', policy: 'Overflow policy', pressure_threshold: 'Pressure threshold (0–1]', lease: 'Default lease', max_deliveries: 'Max deliveries' };
    const err = h('p', { class: 'error', role: 'alert' });
    let dirty = false;
    const el = h('form', { class: 'settings', novalidate: true, oninput: () => { dirty = true; }, onsubmit: save },
      ...Object.keys(fields).map((k) => {
        hints[k] = h('small', { class: 'muted', id: `h-${k}` });
        fields[k].setAttribute('aria-describedby', `h-${k}`);
        return h('div', { class: 'field' }, h('label', { for: fields[k].id, text: label[k] }), fields[k], hints[k]);
      }),
      err,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', onclick: () => { dirty = false; fill(info); }, text: 'Reset' }),
        h('button', { class: 'primary', id: 'save-settings', text: 'Save settings' })));

    function fill(i) {
      if (!i) return;
      for (const k of Object.keys(fields)) {
        const eff = i.settings[k];
        hints[k].textContent = `in effect: ${eff === undefined ? '–' : eff} (${i.sources[k] || 'default'})`;
        if (!dirty) fields[k].value = i.declared[k] === undefined ? '' : String(i.declared[k]);
      }
    }

    async function save(e) {
      e.preventDefault();
      err.textContent = '';
      for (const f of Object.values(fields)) {
        if (!f.checkValidity()) { err.textContent = `${label[f.name]}: ${f.validationMessage}`; f.focus(); return; }
      }
      const body = {};
      const v = (k) => fields[k].value.trim();
      if (v('max_size')) {
        const n = Number(v('max_size'));
        if (!Number.isInteger(n) || n === 0 || n < -1) { err.textContent = 'Max size: a whole number from 1, or -1 for no bound.'; fields.max_size.focus(); return; }
        body.max_size = n;
      }
      if (v('policy')) body.policy = v('policy');
      if (v('pressure_threshold')) body.pressure_threshold = Number(v('pressure_threshold'));
      if (v('lease')) body.lease = v('lease');
      if (v('max_deliveries')) body.max_deliveries = Number(v('max_deliveries'));
      try {
        info = await api('PUT', base, body);
        dirty = false;
        toast(`Settings of ${name} saved.`);
        refresh();
      } catch (e2) { err.textContent = e2.message; }
    }
    return { el, fill };
  }

  // section is a paged list of items or deliveries.
  function section(heading, kind) {
    const id = kind + '-h';
    const list = h('ol', { class: 'entries', id: kind });
    const more = h('button', { type: 'button', hidden: true, text: 'Next page →' });
    const reload = h('button', { type: 'button', text: 'Refresh', onclick: () => load('') });
    const note = h('p', { class: 'muted small' });
    let next = '';
    let offset = 0;
    let cursorNow = '';
    more.addEventListener('click', () => load(next));
    const el = h('section', { 'aria-labelledby': id }, h('div', { class: 'bar' }, h('h2', { id, text: heading }), reload), note, list, more);
    async function load(cursor) {
      try {
        const r = await api('GET', `${base}/${kind}?limit=${LIST}` + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
        if (stopped) return;
        const rows = kind === 'items' ? r.items : r.deliveries;
        clear(list);
        if (cursor !== cursorNow) offset = cursor ? offset + LIST : 0;
        cursorNow = cursor;
        list.start = offset + 1;
        for (const x of rows) list.appendChild(kind === 'items' ? h('li', null, pretty(x)) : delivery(x));
        note.textContent = rows.length ? '' : (kind === 'items' ? 'The queue is empty.' : 'Nothing in flight.');
        next = r.next_cursor || '';
        more.hidden = !next;
      } catch (e) { note.textContent = 'Failed: ' + e.message; }
    }
    load('');
    // auto reloads the page shown, unless the user is reading it (an item
    // unfolded, or the focus in the list).
    const auto = () => { if (!busy(list)) load(cursorNow); };
    return { el, load, auto };
  }

  function delivery(d) {
    return h('li', null,
      h('div', { class: 'meta' },
        h('code', { text: d.id || '(no id)' }),
        h('span', { text: `attempt ${d.attempt}` }),
        h('span', { text: d.state }),
        h('span', { text: 'deadline ' + fmtTime(d.deadline) }),
        d.age_seconds !== undefined ? h('span', { text: 'age ' + fmtAge(d.age_seconds) }) : null,
        d.item_truncated ? h('span', { class: 'muted', text: `truncated, ${fmtNum(d.item_bytes)} bytes` }) : null),
      pretty(d.item));
  }

  function dlqSection() {
    let kind = 'overflow';
    let cursor = '';
    let next = '';
    let total = 0;
    const list = h('ol', { class: 'entries', id: 'dlq' });
    const note = h('p', { class: 'muted small', 'aria-live': 'polite' });
    const tabs = ['overflow', 'failed'].map((k) => h('button', {
      type: 'button', id: 'dlq-' + k, 'aria-pressed': String(k === kind),
      onclick: () => { kind = k; tabs.forEach((t) => t.setAttribute('aria-pressed', String(t.id === 'dlq-' + k))); load(''); },
      text: k === 'overflow' ? 'Overflow DLQ' : 'Failed DLQ',
    }));
    const count = h('input', { id: 'requeue-count', type: 'number', min: 1, step: 1, value: 10, inputmode: 'numeric' });
    const prev = h('button', { type: 'button', text: '← First page', onclick: () => load('') });
    const more = h('button', { type: 'button', text: 'Next page →', onclick: () => load(next) });
    const el = h('section', { 'aria-labelledby': 'dlq-h' },
      h('div', { class: 'bar' }, h('h2', { id: 'dlq-h', text: 'Dead-letter queues' }),
        h('div', { role: 'group', 'aria-label': 'Which DLQ', class: 'tabs' }, ...tabs)),
      h('div', { class: 'actions' },
        h('div', { class: 'field inline' }, h('label', { for: 'requeue-count', text: 'Requeue' }), count),
        h('button', { type: 'button', id: 'requeue-n', onclick: () => requeue(Number(count.value)), text: 'Requeue N' }),
        h('button', { type: 'button', id: 'requeue-all', onclick: () => requeue(0), text: 'Requeue all…' }),
        h('button', { type: 'button', class: 'danger', id: 'purge', onclick: purge, text: 'Purge…' }),
        h('button', { type: 'button', onclick: () => load(cursor), text: 'Refresh' })),
      note, list, h('div', { class: 'pager' }, prev, more));

    async function load(c) {
      try {
        const r = await api('GET', `${base}/dlq?kind=${kind}&limit=${LIST}` + (c ? '&cursor=' + encodeURIComponent(c) : ''));
        if (stopped) return;
        cursor = c; next = r.next_cursor || ''; total = r.total;
        clear(list);
        const first = r.items.length ? r.items[0].index : 0;
        list.start = first + 1;
        for (const e of r.items) list.appendChild(entry(e));
        note.textContent = total ? `${fmtNum(total)} entries; showing ${fmtNum(first)}–${fmtNum(first + r.items.length - 1)} (0 is the oldest).` : 'This DLQ is empty.';
        prev.hidden = !c; more.hidden = !next;
      } catch (e) { note.textContent = 'Failed: ' + e.message; }
    }

    function entry(e) {
      if (e.malformed) {
        return h('li', { class: 'malformed' }, h('div', { class: 'meta' }, h('span', { text: `#${e.index}` }), h('strong', { text: 'malformed entry' }),
          h('button', { type: 'button', class: 'danger small-btn', 'data-delete': e.index, onclick: () => removeEntry(e), text: 'Delete…' })), h('pre', { class: 'json', text: e.raw }));
      }
      const meta = kind === 'overflow'
        ? [h('span', { text: 'reason: ' + (e.reason || '–') }), h('span', { text: 'policy: ' + (e.overflow_policy || '–') }), h('span', { text: 'from: ' + (e.original_queue || '–') })]
        : [h('span', { class: 'err', text: 'error: ' + (e.error || '–') }), h('span', { text: 'attempts: ' + (e.attempt_count || 0) }),
          h('span', { text: 'first failed: ' + fmtTime(e.first_failed_at) }), h('span', { text: 'last failed: ' + fmtTime(e.last_failed_at) })];
      const del = h('button', { type: 'button', class: 'danger small-btn', 'data-delete': e.index, 'aria-label': `Delete entry ${e.index}`, onclick: () => removeEntry(e), text: 'Delete…' });
      return h('li', null, h('div', { class: 'meta' }, h('span', { text: `#${e.index}` }), ...meta, del), pretty(e.item));
    }

    // removeEntry deletes one entry; the digest makes the service refuse
    // (409) when the index now holds another entry.
    async function removeEntry(e) {
      if (!await confirmAction(`Delete entry #${e.index}?`, `This deletes entry #${e.index} of the ${kind} DLQ of ${name}. It cannot be undone.`, 'Delete')) return;
      try {
        await api('DELETE', `${base}/dlq/${e.index}?kind=${kind}&digest=${e.digest}`);
        toast(`Deleted entry #${e.index} of the ${kind} DLQ.`);
      } catch (err) {
        toast(err.status === 409 ? 'Not deleted: the DLQ changed since it was shown. The list is reloaded; try again.' : 'Delete failed: ' + err.message, true);
      }
      load(cursor); refresh();
    }

    async function requeue(n) {
      if (n !== 0 && !(Number.isInteger(n) && n >= 1)) { toast('Requeue: give a whole number of entries, 1 or more.', true); count.focus(); return; }
      const what = n === 0 ? `all ${fmtNum(total)} entries` : `up to ${fmtNum(n)} entries (oldest first)`;
      if (!await confirmAction(`Requeue from the ${kind} DLQ?`, `This moves ${what} back to the tail of ${name}, under its overflow policy.`, 'Requeue')) return;
      try {
        const r = await api('POST', `${base}/dlq/requeue?kind=${kind}` + (n ? '&count=' + n : ''));
        toast(`Requeued ${fmtNum(r.requeued)}; ${fmtNum(r.remaining)} remain in the DLQ` + (r.displaced ? `; ${fmtNum(r.displaced)} queue items displaced.` : '.'));
        load(''); refresh(); items.load('');
      } catch (e) { toast('Requeue failed: ' + e.message, true); }
    }

    async function purge() {
      if (!await confirmAction(`Purge the ${kind} DLQ?`, `This deletes all ${fmtNum(total)} entries of the ${kind} DLQ of ${name}. It cannot be undone.`, 'Purge')) return;
      try {
        const r = await api('DELETE', `${base}/dlq?kind=${kind}`);
        toast(`Purged ${fmtNum(r.purged)} entries from the ${kind} DLQ.`);
        load(''); refresh();
      } catch (e) { toast('Purge failed: ' + e.message, true); }
    }

    load('');
    const auto = () => { if (!busy(list)) load(cursor); };
    return { el, load, auto };
  }

  poll = poller(load, 2000);
  return () => { stopped = true; poll.stop(); };
}
