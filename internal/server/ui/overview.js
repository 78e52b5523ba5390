// The overview: every queue, filtered by name and a page at a time, with
// live counts and rates for the queues on the page.
import { api, q } from './api.js';
import { h, clear, fmtNum, fmtRate, fmtTime, fmtAge, toast, poller } from './dom.js';
import { record, rates, sparkline } from './spark.js';

const PAGE = 25;
const LIST_EVERY = 10000; // the whole list (names, lengths): every 10 s
const ROWS_EVERY = 2000; // the rows shown (counters, DLQs): every 2 s

export function overview(main, params) {
  let all = []; // rows of GET /v1/queues
  let details = new Map(); // name -> GET /v1/queues/{name}
  let filter = params.get('filter') || '';
  let page = Math.max(0, Number(params.get('page') || 0) | 0);
  let stopped = false;
  let list, rows; // pollers

  const filterInput = h('input', {
    id: 'filter', type: 'search', placeholder: 'Filter by name', value: filter, autocomplete: 'off',
    oninput: () => { filter = filterInput.value; page = 0; render(); if (rows) rows.kick(); },
  });
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  main.append(
    h('div', { class: 'bar' },
      h('h1', { text: 'Queues' }),
      h('div', { class: 'field inline' }, h('label', { for: 'filter', text: 'Filter' }), filterInput)),
    status,
    h('div', { class: 'scroll' },
      h('table', { class: 'queues' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col', text: 'Queue' }),
          h('th', { scope: 'col', class: 'num', text: 'Length' }),
          h('th', { scope: 'col', class: 'num', text: 'Oldest' }),
          h('th', { scope: 'col', class: 'num', text: 'Capacity' }),
          h('th', { scope: 'col', text: 'Fill' }),
          h('th', { scope: 'col', text: 'Policy' }),
          h('th', { scope: 'col', class: 'num', text: 'In flight' }),
          h('th', { scope: 'col', class: 'num', text: 'Overflow DLQ' }),
          h('th', { scope: 'col', class: 'num', text: 'Failed DLQ' }),
          h('th', { scope: 'col', text: 'Added' }),
          h('th', { scope: 'col', text: 'Acked' }),
          h('th', { scope: 'col', text: 'Dead-lettered' }))),
        tbody)),
    pager,
    h('p', { class: 'muted small', text: "Rates are computed in this page from the engine's counters, sampled every 2 s while it is open. The oldest item's age is a lower bound: how long the item at the head had been there when the service's maintainer last looked (every second by default)." }));

  function visible() {
    const f = filter.trim().toLowerCase();
    return f ? all.filter((r) => r.queue_name.toLowerCase().includes(f)) : all;
  }

  function render() {
    const rows = visible();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (page >= pages) page = pages - 1;
    const shown = rows.slice(page * PAGE, page * PAGE + PAGE);
    clear(tbody);
    for (const r of shown) tbody.appendChild(row(r, details.get(r.queue_name)));
    if (!rows.length) {
      tbody.appendChild(h('tr', null, h('td', { colspan: 12, class: 'empty', text: all.length ? 'No queue matches the filter.' : 'No queues yet.' })));
    }
    status.textContent = `${fmtNum(rows.length)} of ${fmtNum(all.length)} queues`;
    clear(pager);
    if (pages > 1) {
      pager.append(
        h('button', { type: 'button', disabled: page === 0, onclick: () => { page--; render(); rows.kick(); }, text: '← Previous' }),
        h('span', { text: `Page ${page + 1} of ${pages}` }),
        h('button', { type: 'button', disabled: page >= pages - 1, onclick: () => { page++; render(); rows.kick(); }, text: 'Next →' }));
    }
    return shown;
  }

  async function loadList() {
    const out = [];
    let cursor = '';
    do {
      // A small first page puts rows on screen sooner; the rest come in
      // pages of the largest size the API allows.
      const limit = out.length ? 1000 : 100;
      const page = await api('GET', `/v1/queues?limit=${limit}` + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      out.push(...page.queues);
      cursor = page.next_cursor || '';
      if (stopped) return;
      if (!all.length) { all = out.slice(); render(); } // first page on screen at once
    } while (cursor);
    all = out;
  }

  async function refreshList() {
    try {
      await loadList();
      if (stopped) return;
      render();
      if (rows) rows.kick(); else rows = poller(refreshRows, ROWS_EVERY);
    } catch (e) {
      if (!stopped) toast('Listing queues failed: ' + e.message, true);
    }
  }

  async function refreshRows() {
    const names = visible().slice(page * PAGE, page * PAGE + PAGE).map((r) => r.queue_name);
    await Promise.all(names.map(async (n) => {
      try {
        const d = await api('GET', q(n));
        details.set(n, d);
        record(n, d.stats);
      } catch (e) {
        if (e.status !== 404) details.delete(n);
      }
    }));
    if (stopped) return;
    for (const r of all) {
      const d = details.get(r.queue_name);
      if (d) Object.assign(r, { current_length: d.current_length, max_size: d.max_size, fill_ratio: d.fill_ratio, overflow_policy: d.overflow_policy, paused: d.paused });
    }
    render();
  }

  list = poller(refreshList, LIST_EVERY);
  return () => { stopped = true; list.stop(); if (rows) rows.stop(); };
}

function row(r, d) {
  const name = r.queue_name;
  const fill = Math.min(1, Math.max(0, r.fill_ratio || 0));
  const bounded = r.max_size > 0;
  const cls = r.is_full ? 'full' : r.is_at_pressure_threshold ? 'warn' : '';
  return h('tr', { dataset: { queue: name } },
    h('th', { scope: 'row' },
      h('a', { href: '#/queue/' + encodeURIComponent(name), text: name }),
      r.paused ? h('span', { class: 'badge', text: 'paused' }) : null),
    h('td', { class: 'num', 'data-col': 'length', 'data-label': 'Length', text: fmtNum(r.current_length) }),
    oldestCell(r, d),
    h('td', { class: 'num', 'data-label': 'Capacity', text: bounded ? fmtNum(r.max_size) : '∞' }),
    h('td', { 'data-label': 'Fill' }, bounded
      ? h('meter', { class: 'fill ' + cls, min: 0, max: 1, low: 0.6, high: 0.8, optimum: 0, value: fill, title: (fill * 100).toFixed(1) + '%', 'aria-label': `${name} fill ${(fill * 100).toFixed(1)}%` })
      : h('span', { class: 'muted', text: 'unbounded' })),
    h('td', { 'data-label': 'Policy', text: r.overflow_policy || '–' }),
    h('td', { class: 'num', 'data-col': 'in-flight', 'data-label': 'In flight', text: d ? fmtNum(d.in_flight) : '…' }),
    h('td', { class: 'num', 'data-col': 'overflow-dlq', 'data-label': 'Overflow DLQ', text: d ? fmtNum(d.dlq_length) : '…' }),
    h('td', { class: 'num', 'data-col': 'failed-dlq', 'data-label': 'Failed DLQ', text: d ? fmtNum(d.failed_length) : '…' }),
    rateCell(name, 'added_total', 'added', 'Added'),
    rateCell(name, 'acked_total', 'acked', 'Acked'),
    rateCell(name, 'dead_lettered_total', 'dead-lettered', 'Dead-lettered'));
}

// oldestCell shows how long the oldest waiting item has waited, at least
// (stats.oldest_age_seconds, sampled by the maintainer).
export function oldestCell(r, d) {
  const s = d && d.stats;
  const age = s && s.head_sampled_at && r.current_length > 0 ? s.oldest_age_seconds : undefined;
  return h('td', {
    class: 'num', 'data-col': 'oldest', 'data-label': 'Oldest',
    title: age === undefined ? 'not sampled yet, or the queue is empty' : `at least; sampled at ${fmtTime(s.head_sampled_at)}`,
    text: age === undefined ? '–' : '≥ ' + fmtAge(age),
  });
}

export function rateCell(name, field, label, title, tag = 'td') {
  const rs = rates(name, field);
  const last = rs.length ? rs[rs.length - 1] : undefined;
  return h(tag, { class: 'rate', 'data-col': label, 'data-label': title || label },
    sparkline(rs, `${name} ${label} per second`),
    h('span', { class: 'small', text: fmtRate(last) }));
}
