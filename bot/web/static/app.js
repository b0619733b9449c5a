/* Hybrid Trader web view: dashboard, symbol chart, agents. Read-only.
   Credentials: Telegram.WebApp.initData when the page runs inside Telegram, else the URL hash's tgWebAppData,
   else a signed link token (?t=). They live in sessionStorage for this tab only. Texts come from /api/me. */
"use strict";
(function () {
  const KEY = "ht-auth";
  const tg = window.Telegram && window.Telegram.WebApp;
  const state = { auth: null, me: null, L: {}, ws: null, wsTimer: null, wsDelay: 500, watch: [], onTick: null, ticks: 0 };
  const $ = (sel) => document.querySelector(sel);
  const main = () => $("#main");

  function readAuth() {
    let auth = null;
    if (tg && tg.initData) auth = "tma " + tg.initData;
    const hash = new URLSearchParams(location.hash.slice(1));
    if (!auth && hash.get("tgWebAppData")) auth = "tma " + hash.get("tgWebAppData");
    const query = new URLSearchParams(location.search);
    if (!auth && query.get("t")) auth = "link " + query.get("t");
    if (auth) {
      try { sessionStorage.setItem(KEY, auth); } catch (e) { /* private mode: memory only */ }
      query.delete("t");
      const rest = query.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));  // no secret left in the URL
    } else {
      try { auth = sessionStorage.getItem(KEY); } catch (e) { auth = null; }
    }
    return { auth, theme: theme(hash) };
  }

  function theme(hash) {
    let params = tg && tg.themeParams && Object.keys(tg.themeParams).length ? tg.themeParams : null;
    if (!params && hash.get("tgWebAppThemeParams")) {
      try { params = JSON.parse(hash.get("tgWebAppThemeParams")); } catch (e) { params = null; }
    }
    if (!params) return;
    const root = document.documentElement, map = { bg_color: "--bg", secondary_bg_color: "--card", text_color: "--text",
      hint_color: "--hint", button_color: "--accent" };
    for (const [k, v] of Object.entries(map)) if (/^#[0-9a-f]{3,8}$/i.test(params[k] || "")) root.style.setProperty(v, params[k]);
    const bg = params.bg_color || "#ffffff", n = parseInt(bg.slice(1, 7), 16);
    const lum = (0.299 * ((n >> 16) & 255) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
    root.classList.add(lum < 0.5 ? "tg-dark" : "tg-light");
  }

  // Telegram's Mini App events without its SDK (core.telegram.org/api/web-events): mobile and desktop clients
  // expose TelegramWebviewProxy, the web clients listen for postMessage from their iframe.
  function postEvent(type) {
    const proxy = window.TelegramWebviewProxy;
    if (proxy && proxy.postEvent) proxy.postEvent(type, "");
    else if (window.parent !== window) window.parent.postMessage(JSON.stringify({ eventType: type, eventData: "" }), "*");
  }

  class HttpError extends Error { constructor(status, body) { super(body.error || String(status)); this.status = status; this.body = body; } }

  function dataUrl(page) {
    const q = params(), sym = encodeURIComponent(q.get("symbol") || "EURUSD"), tf = encodeURIComponent(q.get("tf") || "H1");
    if (page === "dashboard") return "/api/dashboard?period=" + encodeURIComponent(q.get("period") || "all");
    return `/api/${page}?symbol=${sym}&tf=${tf}`;
  }

  function api(path) {
    if (state.early && state.early.path === path) {  // fetched beside /api/me
      const early = state.early.promise;
      state.early = null;
      return early;
    }
    return request(path);
  }

  async function request(path) {
    const r = await fetch(path, { headers: { Authorization: state.auth || "" }, cache: "no-store" });
    let body = {};
    try { body = await r.json(); } catch (e) { body = {}; }
    if (!r.ok) throw new HttpError(r.status, body);
    return body;
  }

  function fail(err) {
    const L = state.L, el = document.createElement("p");
    el.className = "error"; el.id = "error";
    if (err instanceof HttpError && err.body && err.body.message) el.textContent = err.body.message;
    else if (err instanceof HttpError && err.status === 401) el.textContent = L.unauthorized || "401";
    else if (err instanceof HttpError && err.status === 404) el.textContent = L.not_found || "404";
    else el.textContent = L.error || String(err);
    main().replaceChildren(el);
    document.body.dataset.ready = "error";
  }

  // ---- formatting ----
  const nf = (digits) => new Intl.NumberFormat(state.me ? state.me.locale : undefined,
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const money = (v) => (v == null ? "—" : nf(2).format(v));
  const pct = (v) => (v == null ? "—" : nf(1).format(v) + "%");
  const num = (v, d) => (v == null ? "—" : nf(d == null ? 2 : d).format(v));
  const sign = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") el.className = v; else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v != null) el.setAttribute(k, v);
    }
    for (const kid of kids) if (kid != null) el.append(kid);
    return el;
  }
  const kpi = (id, label, value, cls) => h("div", { class: "kpi" }, h("div", { class: "k" }, label), h("div", { class: "v " + (cls || ""), id }, value));
  const card = (title, ...kids) => h("section", { class: "card" }, h("h2", null, title), ...kids);

  // ---- live ticks: one WebSocket per page ----
  function connect() {
    if (state.ws) return;
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/app/ws");
    state.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ auth: state.auth }));
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "ready") { state.wsDelay = 500; setLive(true); sendWatch(); }
      else if (msg.type === "ticks" && state.onTick) for (const t of msg.ticks) { state.ticks++; state.onTick(t); }
    };
    ws.onclose = (ev) => {
      state.ws = null; setLive(false);
      if (ev.code === 4401 || ev.code === 4403) return;  // not allowed: no retry
      state.wsTimer = setTimeout(connect, state.wsDelay); state.wsDelay = Math.min(state.wsDelay * 2, 15000);
    };
  }
  function sendWatch() {
    if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ watch: state.watch }));
  }
  function watch(symbols, onTick) { state.watch = symbols; state.onTick = onTick; sendWatch(); }
  function setLive(on) {
    const el = $("#live"); el.hidden = false; el.classList.toggle("on", on);
    el.textContent = on ? state.L.live || "" : state.L.offline || "";
  }

  // ---- pages ----
  const params = () => new URLSearchParams(location.search);
  function go(path) { history.pushState(null, "", path); route(); }

  async function dashboard() {
    const L = state.L, period = params().get("period") || "all";
    const d = await api(dataUrl("dashboard"));
    const m = d.metrics || {};
    const tabs = h("div", { class: "tabs" }, ...["today", "week", "month", "all"].map((p) =>
      h("button", { class: p === d.period ? "on" : "", "data-period": p, onclick: () => go("/app/?period=" + p) }, L["period_" + p])));
    const positions = d.positions || [];
    const kpis = h("div", { class: "kpis" },
      kpi("kpi-equity", L.equity, money(d.equity_now)),
      kpi("kpi-net", L.net_pnl, money(m.net), sign(m.net)),
      kpi("kpi-return", L.return_pct, pct(m.return_pct), sign(m.return_pct)),
      kpi("kpi-winrate", L.win_rate, pct(m.win_rate)),
      kpi("kpi-pf", L.profit_factor, num(m.profit_factor)),
      kpi("kpi-dd", L.max_drawdown, pct(m.max_drawdown_pct), m.max_drawdown_pct ? "down" : ""),
      kpi("kpi-sharpe", L.sharpe, num(m.sharpe)),
      kpi("kpi-trades", L.trades, String(m.trades || 0)),
      d.buy_and_hold_pct != null ? kpi("kpi-bh", L.buy_and_hold, pct(d.buy_and_hold_pct), sign(d.buy_and_hold_pct)) : null,
      d.platform_median_pct != null ? kpi("kpi-median", L.platform_median, pct(d.platform_median_pct)) : null);
    const eq = h("canvas", { id: "equity" }), dd = h("canvas", { id: "drawdown", class: "short" }), bs = h("canvas", { id: "by-symbol" });
    const rows = (d.by_symbol || []).map((s) => ({ label: s.symbol, value: s.net }));
    const posTable = positions.length ? h("table", { id: "positions" },
      h("tr", null, ...[L.symbol, L.side, L.volume, L.price, L.profit].map((x) => h("th", null, x))),
      ...positions.map((p) => h("tr", { "data-ticket": p.ticket },
        h("td", null, p.symbol), h("td", null, L[p.side] || p.side), h("td", null, num(p.volume)),
        h("td", { class: "px" }, num(p.price, p.digits)), h("td", { class: "pl " + sign(p.profit) }, money(p.profit)))))
      : h("p", { class: "note" }, L.no_positions);
    main().replaceChildren(tabs, kpis,
      card(L.equity, eq), card(L.drawdown, dd),
      card(L.pnl_by_symbol, rows.length ? bs : h("p", { class: "note", id: "no-trades" }, L.no_trades)),
      card(L.open_positions, posTable));
    const draw = () => {
      HTChart.line(eq, d.equity.t, [{ v: d.equity.v, color: getComputedStyle(document.documentElement).getPropertyValue("--accent").trim(), fill: true }], { format: (v) => num(v, 0) });
      HTChart.line(dd, d.drawdown.t, [{ v: d.drawdown.v, color: getComputedStyle(document.documentElement).getPropertyValue("--down").trim(), fill: true }], { format: (v) => pct(v), zero: true });
      if (rows.length) HTChart.bars(bs, rows, money);
    };
    draw(); state.redraw = draw;
    // live: open positions revalue from ticks (money per unit of price from the server), equity follows
    const base = d.equity_now, open = positions.map((p) => ({ ...p, profit0: p.profit }));
    watch([...new Set(open.map((p) => p.symbol))], (t) => {
      for (const p of open) {
        if (p.symbol !== t.s) continue;
        p.price = p.side === "buy" ? t.b : t.a;
        p.profit = (p.price - p.price_open) * (p.side === "buy" ? 1 : -1) * p.per_unit;
        const row = document.querySelector(`#positions tr[data-ticket="${p.ticket}"]`);
        if (!row) continue;
        row.querySelector(".px").textContent = num(p.price, p.digits);
        const pl = row.querySelector(".pl"); pl.textContent = money(p.profit); pl.className = "pl " + sign(p.profit);
      }
      if (base != null) $("#kpi-equity").textContent = money(base + open.reduce((a, p) => a + p.profit - p.profit0, 0));
    });
    document.body.dataset.ready = "dashboard";
  }

  function pickers(symbol, tf, path) {
    const sym = h("select", { id: "symbol", onchange: () => go(`${path}?symbol=${sym.value}&tf=${tfs.value}`) },
      ...(state.me.symbols.includes(symbol) ? state.me.symbols : [symbol, ...state.me.symbols]).map((s) =>
        h("option", s === symbol ? { value: s, selected: "" } : { value: s }, s)));
    const tfs = h("select", { id: "tf", onchange: () => go(`${path}?symbol=${sym.value}&tf=${tfs.value}`) },
      ...state.me.timeframes.map((t) => h("option", t === tf ? { value: t, selected: "" } : { value: t }, t)));
    return h("div", { class: "controls" }, sym, tfs);
  }

  async function chart() {
    const L = state.L;
    const d = await api(dataUrl("chart"));
    const canvas = h("canvas", { id: "candles", class: "tall" });
    const price = h("span", { class: "price", id: "last-price" }, num(d.bars.c[d.bars.c.length - 1], d.digits));
    const legend = h("div", { class: "legend" },
      h("span", null, h("i", { class: "sw-warn" }), L.alert_level + " (" + d.levels.length + ")"),
      h("span", null, h("i", { class: "sw-up" }), L.your_trades + " (" + d.trades.length + ")"),
      h("span", null, h("i", { class: "sw-accent" }), L.signals + " (" + d.signals.length + ")"));
    main().replaceChildren(pickers(d.symbol, d.tf, "/app/chart"),
      h("div", { class: "controls" }, h("strong", null, d.symbol), h("span", { class: "note" }, d.description), price),
      card(d.symbol + " · " + d.tf, canvas, legend));
    let last = null;
    const draw = () => HTChart.candles(canvas, d.bars, { levels: d.levels, trades: d.trades, signals: d.signals,
      positions: d.positions, last, digits: d.digits, tfSeconds: d.tf_seconds, labels: L, format: (v) => num(v, d.digits) });
    draw(); state.redraw = draw;
    watch([d.symbol], (t) => {
      if (t.s !== d.symbol) return;
      last = t.b;
      const b = d.bars, n = b.t.length, barTime = Math.floor(t.t / 1000 / d.tf_seconds) * d.tf_seconds;
      if (n && barTime > b.t[n - 1]) { b.t.push(barTime); b.o.push(t.b); b.h.push(t.b); b.l.push(t.b); b.c.push(t.b); }
      else if (n) { b.c[n - 1] = t.b; b.h[n - 1] = Math.max(b.h[n - 1], t.b); b.l[n - 1] = Math.min(b.l[n - 1], t.b); }
      price.textContent = num(t.b, d.digits); price.dataset.ticks = String(state.ticks);
      draw();
    });
    document.body.dataset.ready = "chart";
  }

  async function agents() {
    const L = state.L;
    const d = await api(dataUrl("agents"));
    const kids = [pickers(d.symbol, d.tf, "/app/agents")];
    const c = d.consensus;
    if (c) kids.push(h("div", { class: "kpis" },
      kpi("kpi-consensus", L.consensus, L[c.direction] || c.direction, c.direction === "buy" ? "up" : c.direction === "sell" ? "down" : ""),
      kpi("kpi-confidence", L.confidence, c.confidence == null ? "—" : pct(c.confidence * 100)),
      kpi("kpi-agreement", L.agreement, c.agreement == null ? "—" : pct(c.agreement * 100))));
    const votes = d.votes || [];
    kids.push(card(L.votes, votes.length ? h("table", { id: "votes" },
      h("tr", null, ...[L.agent, L.vote, L.confidence, L.weight, L.hit_rate].map((x) => h("th", null, x))),
      ...votes.map((v) => h("tr", null, h("td", null, v.agent), h("td", { class: v.direction === "buy" ? "up" : v.direction === "sell" ? "down" : "" }, L[v.direction] || v.direction),
        h("td", null, v.confidence == null ? "—" : pct(v.confidence * 100)), h("td", null, num(v.weight, 2)), h("td", null, v.hit_rate == null ? "—" : pct(v.hit_rate * 100)))))
      : h("p", { class: "note" }, L.no_signals)));
    const hist = d.history || { t: [], agents: {} };
    const names = Object.keys(hist.agents);
    const palette = ["#2481cc", "#1a9f5b", "#d64545", "#d89b1c", "#8e44ad", "#16a085", "#e67e22", "#7f8c8d"];
    const canvas = h("canvas", { id: "weights" });
    kids.push(card(L.weights, hist.t.length ? canvas : h("p", { class: "note" }, L.no_history),
      h("div", { class: "legend" }, ...names.map((n, i) => h("span", null, h("i", { class: "c" + (i % palette.length) }), n)))));
    const signals = (d.signals || []).slice(0, 30);
    const when = (t) => new Date(t * 1000).toLocaleString(state.me.locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    if (signals.length) kids.push(card(L.signals, h("table", { id: "signals" },
      h("tr", null, ...["", L.agent, L.vote, L.confidence, ""].map((x) => h("th", null, x))),
      ...signals.map((s) => h("tr", null, h("td", null, when(s.time)), h("td", null, s.agent === "consensus" ? L.consensus : s.agent),
        h("td", { class: s.direction === "buy" ? "up" : "down" }, L[s.direction] || s.direction),
        h("td", null, pct(s.confidence * 100)), h("td", { class: s.status === "hit" ? "up" : s.status === "miss" ? "down" : "note" }, L["status_" + s.status] || s.status))))));
    main().replaceChildren(...kids);
    const draw = () => { if (hist.t.length) HTChart.line(canvas, hist.t, names.map((n, i) => ({ v: hist.agents[n], color: palette[i % palette.length] })), { format: (v) => num(v, 2), right: 40 }); };
    draw(); state.redraw = draw;
    watch([], null);
    document.body.dataset.ready = "agents";
  }

  function currentPage() {
    const path = location.pathname.replace(/\/+$/, "");
    return path.endsWith("/chart") ? "chart" : path.endsWith("/agents") ? "agents" : "dashboard";
  }

  async function route() {
    const page = currentPage();
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.page === page);
    document.body.dataset.ready = "";
    state.redraw = null;
    try { await { dashboard, chart, agents }[page](); } catch (e) { fail(e); }
    state.readyAt = performance.now();  // ms since navigation start (read by bench/web.py)
  }

  async function start() {
    const found = readAuth();
    state.auth = found.auth;
    if (tg && tg.ready) { tg.ready(); if (tg.expand) tg.expand(); } else { postEvent("web_app_ready"); postEvent("web_app_expand"); }
    const first = dataUrl(currentPage());  // the page's data loads while the labels do
    state.early = { path: first, promise: request(first) };
    state.early.promise.catch(() => {});  // its error is reported when the page awaits it
    try { state.me = await api("/api/me"); } catch (e) { fail(e); return; }
    state.L = state.me.labels;
    document.documentElement.lang = state.me.locale;
    document.title = state.L.title;
    for (const a of document.querySelectorAll("#nav a")) {
      a.textContent = state.L[a.dataset.label];
      a.addEventListener("click", (ev) => { ev.preventDefault(); go(a.getAttribute("href")); });
    }
    window.addEventListener("popstate", route);
    let pending = 0;
    window.addEventListener("resize", () => { cancelAnimationFrame(pending); pending = requestAnimationFrame(() => state.redraw && state.redraw()); });
    connect();
    await route();
  }

  window.HTApp = { state };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
