"""The operators' status page: consumer lag and throughput over the last hour, dead letters,
unconfirmed clearing files. Served by the clearing service at /status (HTML, refreshing itself
from /status.json); the history is sampled in the background and kept in memory (bounded)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)
HISTORY_S = 3600


@dataclass
class StatusHistory:
    """An hour of samples, bounded by `max_points` per series."""

    max_points: int = 720
    lag: dict[str, deque] = field(default_factory=dict)  # "group|topic" -> (t, lag)
    state: dict[str, str] = field(default_factory=dict)  # "group|topic" -> worst partition state
    throughput: dict[str, deque] = field(default_factory=dict)  # topic -> (t, messages/s)
    dead_letters: dict[str, int] = field(default_factory=dict)  # dlq topic -> messages
    _ends: dict[str, tuple[float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _push(self, table: dict[str, deque], key: str, t: float, value: float) -> None:
        series = table.setdefault(key, deque(maxlen=self.max_points))
        series.append((t, value))
        while series and series[0][0] < t - HISTORY_S:
            series.popleft()

    def record(self, t: float, lag_rows, topic_ends: dict[str, int]) -> None:
        order = ["OK", "GROWING", "STALLED", "STOPPED", "REWOUND"]
        with self.lock:
            per_group: dict[str, tuple[int, str]] = {}
            for r in lag_rows:
                key = f"{r.group}|{r.topic}"
                total, worst = per_group.get(key, (0, "OK"))
                per_group[key] = (total + r.lag, max(worst, r.state.value, key=order.index))
            for key, (total, worst) in per_group.items():
                self._push(self.lag, key, t, total)
                self.state[key] = worst
            for topic, end in topic_ends.items():
                if topic.endswith(".dlq"):
                    self.dead_letters[topic] = end
                    continue
                if topic in self._ends:
                    t0, end0 = self._ends[topic]
                    if t > t0:
                        self._push(self.throughput, topic, t, max(0.0, (end - end0) / (t - t0)))
                self._ends[topic] = (t, end)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "groups": [{"group": k.split("|")[0], "topic": k.split("|")[1], "state": self.state.get(k, "OK"),
                            "lag": list(v)[-1][1] if v else 0, "series": [[round(t), x] for t, x in v]}
                           for k, v in sorted(self.lag.items())],
                "throughput": [{"topic": k, "series": [[round(t), round(x, 2)] for t, x in v]}
                               for k, v in sorted(self.throughput.items())],
                "dead_letters": dict(sorted(self.dead_letters.items())),
            }


def topic_end_offsets(bootstrap: str) -> dict[str, int]:
    """Every topic's total log-end offset (messages ever written, across partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in consumer.topics() if not t.startswith("__")
               for p in consumer.partitions_for_topic(t) or ()]
        totals: dict[str, int] = {}
        for tp, end in consumer.end_offsets(tps).items():
            totals[tp.topic] = totals.get(tp.topic, 0) + end
        return totals
    finally:
        consumer.close()


def sample_status_forever(bootstrap: str, history: StatusHistory, stop: threading.Event, interval_s: float = 15.0,
                          clock: Callable[[], float] = time.time, beat=lambda **_: None) -> None:
    """Sample until stopped; raises on a fault (it runs under a Supervisor, and the page shows
    the last samples meanwhile)."""
    from hub.operations.lag import sample_groups

    while not stop.is_set():
        rows = sample_groups(bootstrap, None, samples=2, interval_s=min(2.0, interval_s / 2))
        history.record(clock(), rows, topic_end_offsets(bootstrap))
        beat()
        stop.wait(interval_s)


STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hub status</title>
<style>
body{font-family:sans-serif;margin:20px;color:#222} h2{margin-top:28px}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.OK{color:#2e7d32} .GROWING{color:#ef6c00} .STALLED,.STOPPED,.REWOUND{color:#c62828;font-weight:bold}
svg{background:#fafafa;border:1px solid #ddd} .muted{color:#777}
</style></head><body>
<h1>Cross-region settlement hub — status</h1>
<p class=muted>Refreshes every 5 s. Lag is judged by its trend (OK / GROWING / STALLED / STOPPED / REWOUND).
<span id=updated></span></p>
<h2>Consumer groups</h2>
<label>Filter <input id=filter placeholder="group or topic"></label>
<label>Sort <select id=sort><option value=state>by state</option><option value=lag>by lag</option>
<option value=group>by group</option></select></label>
<table id=groups><thead><tr><th>group</th><th>topic</th><th>state</th><th>lag</th><th>last hour</th></tr></thead><tbody></tbody></table>
<h2>Throughput (messages/s, last hour)</h2>
<div id=throughput></div>
<h2>Dead letters</h2>
<table id=dlq><thead><tr><th>topic</th><th>messages</th></tr></thead><tbody></tbody></table>
<h2>Quarantined events</h2>
<p class=muted>Settlement events clearing could not apply. Each blocks closing its day (and later days) until an
operator resolves it: <code>hub clearing quarantine resolve SOURCE --apply</code> (after fixing the cause) or
<code>--discard --note "why"</code>.</p>
<table id=quarantined><thead><tr><th>source</th><th>day</th><th>home &larr; treatment</th><th>since</th><th>reason</th></tr></thead><tbody></tbody></table>
<h2>Background loops</h2>
<table id=loops><thead><tr><th>loop</th><th>state</th><th>restarts</th><th>last progress</th><th>last error</th></tr></thead><tbody></tbody></table>
<h2>Fund-risk watch (基金运行风险预警)</h2>
<p class=muted>Each budgeted pool's off-site spending this year per fund against the pro-rata share of its yearly
off-site budget: bars are months' spending, the line what the budget allows by each month's end. WARN and ALARM
at the thresholds the service is configured with.</p>
<div id=fundrisk></div>
<h2>Advance funds (预付金)</h2>
<p class=muted>Each bureau's advance at the clearing centre after each closed day and deposit; the dashed line is
what the rule asks it to hold. A bureau marked LOW is under the warning share: its monthly statement requests a
top-up (<code>hub clearing advance deposit POOL AMOUNT --reference REF</code> records the payment).</p>
<div id=advances></div>
<h2>Unconfirmed clearing files</h2>
<table id=unconfirmed><thead><tr><th>day</th><th>pool</th><th>net position (yuan)</th></tr></thead><tbody></tbody></table>
<script>
const ORDER = {REWOUND:0, STOPPED:1, STALLED:2, GROWING:3, OK:4};
function chart(series, w, h, colour) {
  if (!series.length) return '<svg width="'+w+'" height="'+h+'"><text x="6" y="'+(h/2)+'" font-size="11" fill="#999">no data yet</text></svg>';
  const xs = series.map(p => p[0]), ys = series.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys, 1);
  const pts = series.map(p => ((p[0]-x0)/(x1-x0)*(w-10)+5).toFixed(1)+','+(h-5-(p[1]/y1)*(h-10)).toFixed(1)).join(' ');
  return '<svg width="'+w+'" height="'+h+'"><polyline fill="none" stroke="'+colour+'" stroke-width="2" points="'+pts+'"/>'+
         '<text x="'+(w-4)+'" y="12" font-size="10" text-anchor="end" fill="#555">max '+y1+'</text></svg>';
}
function ledgerChart(series, required, w, h) {
  if (!series.length) return '';
  const ys = series.map(p => p[1]), lo = Math.min(0, ...ys), hi = Math.max(1, required, ...ys);
  const y = v => (h - 5 - (v - lo) / (hi - lo) * (h - 10)).toFixed(1);
  const x = i => (series.length < 2 ? w / 2 : 5 + i / (series.length - 1) * (w - 10)).toFixed(1);
  const pts = series.map((p, i) => x(i) + ',' + y(p[1])).join(' ');
  return '<svg width="'+w+'" height="'+h+'"><line x1="0" x2="'+w+'" y1="'+y(required)+'" y2="'+y(required)+
    '" stroke="#999" stroke-dasharray="4 3"/><line x1="0" x2="'+w+'" y1="'+y(0)+'" y2="'+y(0)+'" stroke="#ddd"/>'+
    '<polyline fill="none" stroke="#6a1b9a" stroke-width="2" points="'+pts+'"/></svg>';
}
function monthsChart(f, w, h) {
  const months = f.months, n = Math.max(months.length, 1), perMonth = f.budget_fen / 12;
  const hi = Math.max(1, perMonth, ...months.map(m => m.spent_fen)), bw = (w - 10) / n;
  const bars = months.map((m, i) => '<rect x="'+(5 + i * bw + 2).toFixed(1)+'" y="'+(h - 5 - m.spent_fen / hi * (h - 10)).toFixed(1)+
    '" width="'+Math.max(bw - 4, 1).toFixed(1)+'" height="'+(m.spent_fen / hi * (h - 10)).toFixed(1)+'" fill="'+
    (m.spent_fen > perMonth ? '#c62828' : '#2e7d32')+'"><title>'+esc(m.month)+' '+(m.spent_fen/100).toFixed(2)+'</title></rect>').join('');
  const y = (h - 5 - perMonth / hi * (h - 10)).toFixed(1);
  return '<svg width="'+w+'" height="'+h+'">'+bars+'<line x1="0" x2="'+w+'" y1="'+y+'" y2="'+y+
    '" stroke="#555" stroke-dasharray="4 3"/></svg>';
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
let data = null;
function render() {
  if (!data) return;
  const f = document.getElementById('filter').value.toLowerCase(), by = document.getElementById('sort').value;
  const groups = data.groups.filter(g => (g.group+' '+g.topic).toLowerCase().includes(f));
  groups.sort((a, b) => by === 'lag' ? b.lag - a.lag : by === 'group' ? a.group.localeCompare(b.group) : ORDER[a.state] - ORDER[b.state]);
  document.querySelector('#groups tbody').innerHTML = groups.map(g => '<tr><td>'+esc(g.group)+'</td><td>'+esc(g.topic)+
    '</td><td class="'+g.state+'">'+g.state+'</td><td>'+g.lag+'</td><td>'+chart(g.series, 260, 40, '#1565c0')+'</td></tr>').join('');
  document.getElementById('throughput').innerHTML = data.throughput.map(t => '<div><b>'+esc(t.topic)+'</b><br>'+
    chart(t.series, 600, 80, '#2e7d32')+'</div>').join('') || '<p class=muted>no data yet</p>';
  document.querySelector('#dlq tbody').innerHTML = Object.entries(data.dead_letters).map(([k, v]) =>
    '<tr><td>'+esc(k)+'</td><td>'+v+'</td></tr>').join('');
  document.getElementById('fundrisk').innerHTML = (data.fund_risk || []).map(p => '<div><b>'+esc(p.pool_code)+
    '</b> as of '+esc(p.as_of)+' <span class="'+(p.level === 'OK' ? 'OK' : p.level === 'WARN' ? 'GROWING' : 'STOPPED')+'">'+
    esc(p.level)+'</span><br>'+p.funds.map(f => esc(f.fund_pay_type)+' '+f.ratio_pct+'% of pro-rata '+
    (f.prorata_fen/100).toFixed(2)+'<br>'+monthsChart(f, 320, 60)).join('<br>')+'</div>').join('') ||
    '<p class=muted>no budgets configured (reference/budgets)</p>';
  document.getElementById('advances').innerHTML = (data.advances || []).map(a => '<div><b>'+esc(a.pool_code)+
    '</b> balance '+(a.balance_fen/100).toFixed(2)+' / required '+(a.required_fen/100).toFixed(2)+' yuan '+
    (a.warning ? '<span class=STOPPED>LOW</span>' : '<span class=OK>ok</span>')+'<br>'+
    ledgerChart(a.series, a.required_fen, 320, 60)+'</div>').join('') || '<p class=muted>no advances kept yet</p>';
  document.querySelector('#unconfirmed tbody').innerHTML = data.unconfirmed.map(u => '<tr><td>'+esc(u.clearing_date)+
    '</td><td>'+esc(u.pool_code)+'</td><td>'+(u.net_position_fen/100).toFixed(2)+'</td></tr>').join('');
  document.querySelector('#quarantined tbody').innerHTML = (data.quarantined || []).map(q => '<tr class=STOPPED><td>'+
    esc(q.source)+'</td><td>'+esc(q.business_date || '?')+'</td><td>'+esc((q.home_pool || '?')+' ← '+(q.treatment_pool || '?'))+
    '</td><td>'+esc(q.quarantined_at)+'</td><td>'+esc(q.reason)+'</td></tr>').join('') || '<tr><td colspan=5 class=muted>none</td></tr>';
  const now = Date.now() / 1000;
  document.querySelector('#loops tbody').innerHTML = (data.loops || []).map(l => '<tr><td>'+esc(l.name)+'</td><td class="'+
    (l.state === 'running' ? 'OK' : 'STOPPED')+'">'+esc(l.state)+'</td><td>'+l.restarts+'</td><td>'+
    Math.round(now - l.last_progress)+' s ago</td><td>'+esc(l.last_error || '')+'</td></tr>').join('');
  document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
}
async function refresh() {
  try { data = await (await fetch('status.json', {headers: {'Authorization': 'Bearer ' + (new URLSearchParams(location.search).get('token') || '')}})).json(); render(); }
  catch (e) { document.getElementById('updated').textContent = 'refresh failed: ' + e; }
}
document.getElementById('filter').oninput = render; document.getElementById('sort').onchange = render;
refresh(); setInterval(refresh, 5000);
</script></body></html>
"""
