"""The live dashboard: one self-contained HTML page served by the node at ``GET /``.

It subscribes to ``blocks`` and ``fills`` over the node's WebSocket and polls JSON-RPC every two
seconds for hot keys, markets and order books. No external assets (the node serves loopback
users who may be offline), no build step.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paraexec node</title><link rel="icon" href="data:,">
<style>
 body{font:14px system-ui,sans-serif;margin:1.2em;background:#0f1419;color:#d8dee9}
 h1{font-size:1.3em;margin:0 0 .4em} h2{font-size:1.05em;margin:1em 0 .3em;color:#88c0d0}
 .cards{display:flex;gap:1em;flex-wrap:wrap} .card{background:#1b222c;padding:.6em 1em;border-radius:6px;min-width:9em}
 .card b{display:block;font-size:1.5em;color:#eceff4} table{border-collapse:collapse;font-variant-numeric:tabular-nums}
 td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #2b3442} th{color:#81a1c1}
 .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em}
 #chart{display:flex;align-items:flex-end;height:80px;gap:2px;background:#1b222c;padding:4px;border-radius:6px}
 #chart div{background:#5e81ac;width:8px} .bid{color:#a3be8c} .ask{color:#bf616a} .muted{color:#6b7689}
</style></head><body>
<h1>paraexec node <span id="chain" class="muted"></span></h1>
<div class="cards">
 <div class="card">height<b id="height">-</b></div>
 <div class="card">tx/s (10 blocks)<b id="tps">-</b></div>
 <div class="card">parallelism (last block)<b id="speedup">-</b></div>
 <div class="card">re-executions (last)<b id="reexec">-</b></div>
 <div class="card">mempool<b id="mempool">-</b></div>
 <div class="card">connection<b id="conn">-</b></div>
</div>
<h2>transactions per block</h2><div id="chart"></div>
<div class="grid">
 <div><h2>blocks</h2><table id="blocks"><thead><tr><th>height</th><th>txs</th><th>ok</th><th>exec ms</th>
  <th>parallelism</th><th>re-exec</th><th>executor</th></tr></thead><tbody></tbody></table></div>
 <div><h2>hottest conflicting keys (last 10 blocks)</h2><table id="hot"><thead><tr><th>key</th><th>txs</th></tr></thead>
  <tbody></tbody></table></div>
</div>
<div id="markets"></div>
<h2>recent trades</h2><table id="trades"><thead><tr><th>height</th><th>market</th><th>price (USD)</th><th>size</th></tr></thead>
<tbody></tbody></table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const blocks = [];
let app = null, rpcId = 0;
const params = {};  // market id -> parameters, for display units
// Display only (never consensus): USD per base unit = subticks * 10^(qce - atomic - 6);
// size in base units = quantums * 10^atomic.
function usd(mid, subticks) { const m = params[mid]; if (!m) return subticks;
  return (subticks * Math.pow(10, m.quantum_conversion_exponent - m.atomic_resolution - 6)).toPrecision(7); }
function units(mid, quantums) { const m = params[mid]; if (!m) return quantums;
  return +(quantums * Math.pow(10, m.atomic_resolution)).toPrecision(6); }
async function rpc(method, params) {
  const r = await fetch("/", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({jsonrpc: "2.0", id: ++rpcId, method, params: params || {}}),
    signal: AbortSignal.timeout(10000)});  // a request that never ends must not hold the polls up
  const j = await r.json();
  if (j.error) throw new Error(j.error.message);
  return j.result;
}
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
function short(h) { return h.length > 28 ? h.slice(0, 14) + "\u2026" + h.slice(-8) : h; }
function esc(text) {  // genesis strings go into markup: as text, never as HTML
  const d = document.createElement("div"); d.textContent = String(text); return d.innerHTML;
}
function onBlock(b) {
  blocks.push(b); if (blocks.length > 60) blocks.shift();
  $("height").textContent = b.height;
  // user transactions per second of wall clock over the last 10 blocks this node produced
  const last = blocks.filter((x) => x.produced_at !== null).slice(-10);
  const span = last.length > 1 ? last[last.length - 1].produced_at - last[0].produced_at : 0;
  const txs = last.slice(1).reduce((s, x) => s + x.user_txs, 0);
  $("tps").textContent = span > 0 ? Math.round(txs / span) : "-";
  // blocks from before the node (re)started carry no execution stats (null): shown as "-"
  const measured = b.exec_ms !== null;
  if (measured) {
    $("speedup").textContent = b.speedup.toFixed(2) + "x";
    $("reexec").textContent = b.re_executions;
    $("mempool").textContent = b.mempool;
  }
  const body = $("blocks").tBodies[0], row = body.insertRow(0);
  row.dataset.height = b.height;
  (measured ? [b.height, b.txs, b.ok, b.exec_ms.toFixed(1), b.speedup.toFixed(2), b.re_executions,
    b.executor + " x" + b.workers] : [b.height, b.txs, b.ok, "-", "-", "-", "before restart"])
    .forEach((v) => cell(row, v, measured ? "" : "muted"));
  while (body.rows.length > 20) body.deleteRow(-1);
  const max = Math.max(1, ...blocks.map((x) => x.txs)), chart = $("chart");
  chart.replaceChildren(...blocks.map((x) => { const d = document.createElement("div");
    d.style.height = (100 * x.txs / max) + "%"; d.title = x.height + ": " + x.txs + " txs"; return d; }));
}
function onFills(msg) {
  const body = $("trades").tBodies[0];
  for (const f of msg.fills) {
    const row = body.insertRow(0);
    const mid = f.market ?? f.market_id;
    row.dataset.quantums = f.quantums;
    [msg.height, params[mid] ? params[mid].ticker : mid, usd(mid, f.subticks), units(mid, f.quantums)].forEach((v) => cell(row, v));
  }
  while (body.rows.length > 30) body.deleteRow(-1);
}
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { $("conn").textContent = "live";
    ws.send(JSON.stringify({jsonrpc: "2.0", id: 1, method: "subscribe", params: {topics: ["blocks", "fills"]}})); };
  ws.onmessage = (ev) => { const m = JSON.parse(ev.data); if (m.method !== "subscription") return;
    if (m.params.topic === "blocks") onBlock(m.params.result); else if (m.params.topic === "fills") onFills(m.params.result); };
  ws.onclose = () => { $("conn").textContent = "reconnecting"; setTimeout(connect, 1000); };
}
let polling = false;  // a poll still running (a slow node) is not overlapped by the next one
async function poll() {
  if (polling) return;
  polling = true;
  try {
    $("mempool").textContent = (await rpc("status")).mempool.txs;  // also between blocks
    const hot = await rpc("get_hot_keys", {top: 10, blocks: 10}), body = $("hot").tBodies[0];
    body.replaceChildren();
    for (const k of hot.keys) { const row = body.insertRow(); cell(row, short(k.key)); cell(row, k.txs); }
    if (app === "exchange") await pollMarkets();
  } catch (e) { /* the next poll retries */ } finally { polling = false; }
}
const BOOKS_SHOWN = 8;  // books asked for each poll: a chain of hundreds of markets shows its first ones
async function pollMarkets() {
  const markets = await rpc("get_markets"), box = $("markets");
  const list = Array.isArray(markets) ? markets : Object.values(markets);
  const parts = [];
  for (const m of list) params[m.market_id] = m.params;
  for (const m of list.slice(0, BOOKS_SHOWN)) {
    const id = m.market_id;
    const book = await rpc("get_book", {market_id: id, depth: 8});
    const pct = ppm => (Number(ppm) / 1e4).toFixed(4) + "%";  // an 8-hour rate in ppm
    let html = "<h2>" + esc(m.ticker) + " <span class=muted>oracle $" + usd(id, m.oracle_price) + " \u00b7 open interest " +
      units(id, m.open_interest) + " \u00b7 funding (8 h) " + pct(m.funding_rate_8h_ppm) + ", predicted " +
      pct(m.predicted_funding_rate_8h_ppm) + "</span></h2><table data-market=" + id +
      "><tr><th>bid size</th><th>bid</th><th>ask</th><th>ask size</th></tr>";
    const bids = book.bids || [], asks = book.asks || [];
    for (let i = 0; i < Math.max(bids.length, asks.length); i++) {
      const b = bids[i] || [], a = asks[i] || [];
      const [bp, bq] = b, [ap, aq] = a;
      const fmt = (f, v) => v === undefined ? "" : f(id, v);
      html += "<tr><td class=bid data-q=" + (bq ?? "") + ">" + fmt(units, bq) + "</td><td class=bid>" + fmt(usd, bp) +
        "</td><td class=ask>" + fmt(usd, ap) + "</td><td class=ask data-q=" + (aq ?? "") + ">" + fmt(units, aq) + "</td></tr>";
    }
    parts.push(html + "</table>");
  }
  const more = list.length > BOOKS_SHOWN ? "<p class=muted>and " + (list.length - BOOKS_SHOWN) +
    " more markets (get_markets, get_book)</p>" : "";
  box.innerHTML = "<div class=grid>" + parts.map((p) => "<div>" + p + "</div>").join("") + "</div>" + more;
}
(async () => {
  try { const s = await rpc("status"); app = s.app; $("chain").textContent = s.chain_id + " \u00b7 " + s.app +
    " \u00b7 " + s.executor + " x" + s.workers; $("height").textContent = s.height;
    $("mempool").textContent = s.mempool.txs;
    for (const b of await rpc("get_recent_blocks", {count: 20})) onBlock(b);
    if (app === "exchange") await pollMarkets();  // first: it loads the markets' display units
    for (const t of await rpc("get_trades", {count: 30})) onFills({height: t.height, fills: [t]}); } catch (e) {}
  connect(); poll(); setInterval(poll, 2000);
})();
</script></body></html>
"""
