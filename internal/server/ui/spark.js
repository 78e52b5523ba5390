// Rates from the engine's per-queue counters (GET /v1/queues/{name},
// "stats"), sampled by the page: the service keeps no history, so the
// charts cover the time this page has been watching.
import { svg, fmtRate } from './dom.js';

export const SAMPLES = 150; // 5 minutes at one sample every 2 s

const history = new Map(); // queue name -> [{t, stats}]

// record adds a sample of a queue's counters.
export function record(name, stats) {
  let h = history.get(name);
  if (!h) history.set(name, (h = []));
  h.push({ t: performance.now() / 1000, s: stats });
  if (h.length > SAMPLES + 1) h.splice(0, h.length - SAMPLES - 1);
}

// rates returns per-second rates of one counter between samples. A
// counter that went down (the queue was deleted and recreated) counts 0.
export function rates(name, field) {
  const h = history.get(name) || [];
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = h[i].t - h[i - 1].t;
    const dv = (h[i].s[field] || 0) - (h[i - 1].s[field] || 0);
    out.push(dt > 0 && dv > 0 ? dv / dt : 0);
  }
  return out;
}

// sparkline draws rates as a small line chart with its latest value.
export function sparkline(values, label) {
  const w = 72, hgt = 24;
  const last = values.length ? values[values.length - 1] : undefined;
  const el = svg('svg', {
    class: 'spark', viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img',
    'aria-label': `${label}: ${fmtRate(last)}`, 'data-last': last === undefined ? '' : last.toFixed(3),
    'data-samples': values.length,
  });
  const max = Math.max(1e-9, ...values);
  // The samples so far fill the width (at least 30 s of it), newest at the
  // right edge.
  const span = Math.max(values.length - 1, 15);
  const pts = values.map((v, i) => {
    const x = w - ((values.length - 1 - i) / span) * w;
    const y = hgt - 2 - (v / max) * (hgt - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  el.appendChild(svg('line', { x1: 0, y1: hgt - 1.5, x2: w, y2: hgt - 1.5, class: 'base' }));
  if (pts.length > 1) {
    el.appendChild(svg('polygon', { points: `${pts[0].split(',')[0]},${hgt - 1.5} ${pts.join(' ')} ${w},${hgt - 1.5}`, class: 'area' }));
    el.appendChild(svg('polyline', { points: pts.join(' '), class: 'line' }));
  }
  return el;
}
