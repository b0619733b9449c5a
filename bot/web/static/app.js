/* Hybrid Trader web view: dashboard, symbol chart, agents. Read-only.
   Credentials: Telegram.WebApp.initData when the page runs inside Telegram, else the URL hash's tgWebAppData,
   else a signed link token (?t=). They live in sessionStorage for this tab only. Texts come from /api/me.
   Charts: TradingView's lightweight-charts (vendor/, served by our server). Colours come from Telegram's theme
   and are adjusted until every text colour reaches WCAG 2.1 AA contrast on the page's backgrounds. */
"use strict";
(function () {
  const KEY = "ht-auth";
  const tg = window.Telegram && window.Telegram.WebApp;
  // app.js runs first (it starts the API requests at once); lightweight-charts loads while they are in flight
  let LWC = null;
  const state = { auth: null, me: null, L: {}, ws: null, wsTimer: null, wsDelay: 500, watch: [], onTick: null, ticks: 0,
    charts: {}, live: [] };
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

  // ---- colours: Telegram's theme, then WCAG AA contrast (4.5:1 for text) on both backgrounds ----
  function rgb(css) {
    let m = /^#([0-9a-f]{3,8})$/i.exec(css.trim());
    if (m) {
      let x = m[1];
      if (x.length <= 4) x = x.split("").map((c) => c + c).join("");
      return [0, 2, 4].map((i) => parseInt(x.slice(i, i + 2), 16));
    }
    m = /rgba?\(([^)]+)\)/.exec(css);
    return m ? m[1].split(",").slice(0, 3).map((v) => parseFloat(v)) : null;
  }
  const hex = (c) => "#" + c.map((v) => Math.round(Math.max(0, Math.min(255, v))).toString(16).padStart(2, "0")).join("");
  function luminance(c) {
    const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function contrast(a, b) { const x = luminance(a), y = luminance(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  // fg moved toward black or white (away from the backgrounds) until it reaches `ratio` on every one of them
  function readable(fg, backs, ratio) {
    const dark = backs.reduce((a, b) => a + luminance(b), 0) / backs.length > 0.18;
    const target = dark ? [0, 0, 0] : [255, 255, 255];
    let c = fg;
    for (let step = 0; step <= 40 && Math.min(...backs.map((b) => contrast(c, b))) < ratio; step++) {
      c = fg.map((v, i) => Math.round(v + (target[i] - v) * step / 40));
    }
    return c;
  }
  const AA = 4.6;  // WCAG 2.1 AA asks 4.5:1 for text; the margin covers rounding to whole colour values
  function accessibleColours() {
    const root = document.documentElement, cs = getComputedStyle(root), get = (n) => rgb(cs.getPropertyValue(n)) || [127, 127, 127];
    const backs = [get("--bg"), get("--card")];
    for (const name of ["--text", "--hint", "--up", "--down"]) root.style.setProperty(name, hex(readable(get(name), backs, AA)));
    // selected tabs: the accent as a background under --on-accent (Telegram's button text colour)
    const on = get("--on-accent");
    root.style.setProperty("--accent", hex(readable(get("--accent"), [on], AA)));
  }

  function theme(hash) {
    let params = tg && tg.themeParams && Object.keys(tg.themeParams).length ? tg.themeParams : null;
    if (!params && hash.get("tgWebAppThemeParams")) {
      try { params = JSON.parse(hash.get("tgWebAppThemeParams")); } catch (e) { params = null; }
    }
    const root = document.documentElement;
    if (params) {
      const map = { bg_color: "--bg", secondary_bg_color: "--card", text_color: "--text", hint_color: "--hint",
        button_color: "--accent", button_text_color: "--on-accent" };
      for (const [k, v] of Object.entries(map)) if (/^#[0-9a-f]{3,8}$/i.test(params[k] || "")) root.style.setProperty(v, params[k]);
      const bg = rgb(params.bg_color || "#ffffff") || [255, 255, 255];
      root.classList.add(luminance(bg) < 0.18 ? "tg-dark" : "tg-light");
    }
    accessibleColours();
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
    el.className = "error"; el.id = "error"; el.setAttribute("role", "alert");
    if (err instanceof HttpError && err.body && err.body.message) el.textContent = err.body.message;
    else if (err instanceof HttpError && err.status === 401) el.textContent = L.unauthorized || "401";
    else if (err instanceof HttpError && err.status === 404) el.textContent = L.not_found || "404";
    else el.textContent = L.error || String(err);
    main().replaceChildren(el);
    document.body.dataset.ready = "error";
  }

  // ---- formatting ----
  const formats = new Map();  // one Intl.NumberFormat per precision: the charts format every axis label with it
  const nf = (digits) => {
    let f = formats.get(digits);
    if (!f) {
      f = new Intl.NumberFormat(state.me ? state.me.locale : undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
      if (state.me) formats.set(digits, f);
    }
    return f;
  };
  const money = (v) => (v == null ? "—" : nf(2).format(v));
  const pct = (v) => (v == null ? "—" : nf(1).format(v) + "%");
  const num = (v, d) => (v == null ? "—" : nf(d == null ? 2 : d).format(v));
  const sign = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
  const dirClass = (d) => (d === "buy" || d === 1 ? "up" : d === "sell" || d === -1 ? "down" : "");
  const when = (t) => new Date(t * 1000).toLocaleString(state.me.locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
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
  const th = (text, scope) => h("th", { scope: scope || "col" }, text);
  const scroller = (label, table) => h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label }, table);
  // the simulated terminal's prices are never shown without saying so
  const simMark = (d) => (d.simulated ? h("span", { class: "sim", id: "sim-mark", title: state.L.simulated_hint }, state.L.simulated) : null);

  // ---- charts (lightweight-charts) ----
  function palette() {
    const cs = getComputedStyle(document.documentElement), v = (n) => cs.getPropertyValue(n).trim();
    return { bg: v("--card"), text: v("--text"), hint: v("--hint"), grid: v("--grid"), up: v("--up"), down: v("--down"),
      accent: v("--accent"), warn: v("--warn") };
  }
  const alpha = (css, a) => { const c = rgb(css) || [127, 127, 127]; return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${a})`; };
  const AGENT_COLOURS = ["#2481cc", "#1a9f5b", "#d64545", "#d89b1c", "#8e44ad", "#16a085", "#e67e22", "#7f8c8d"];

  function makeChart(el, name, data, options) {
    LWC = LWC || window.LightweightCharts;
    const c = palette();
    const chart = LWC.createChart(el, Object.assign({
      autoSize: true,
      layout: { background: { type: "solid", color: c.bg }, textColor: c.text, fontSize: 11,
        fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", attributionLogo: false },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.grid },
      timeScale: { borderColor: c.grid, timeVisible: true, secondsVisible: false },
      crosshair: { mode: LWC.CrosshairMode.Normal },
      localization: { locale: state.me.locale },
    }, options || {}));
    if (data && data.simulated) {
      LWC.createTextWatermark(chart.panes()[0], { horzAlign: "center", vertAlign: "center",
        lines: [{ text: state.L.simulated, color: alpha(c.text, 0.14), fontSize: 26 }] });
    }
    keyboard(el, chart);
    state.charts[name] = chart;
    return chart;
  }

  // arrow keys pan, + and - zoom, 0 shows everything: the chart works without a pointer
  function keyboard(el, chart) {
    el.tabIndex = 0;
    el.addEventListener("keydown", (ev) => {
      const ts = chart.timeScale();
      if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") ts.scrollToPosition(ts.scrollPosition() + (ev.key === "ArrowLeft" ? -5 : 5), false);
      else if (ev.key === "+" || ev.key === "=") zoom(chart, 0.7);
      else if (ev.key === "-") zoom(chart, 1 / 0.7);
      else if (ev.key === "0") ts.fitContent();
      else return;
      ev.preventDefault();
    });
  }
  function zoom(chart, factor) {
    const ts = chart.timeScale(), r = ts.getVisibleLogicalRange();
    if (!r) return;
    const mid = (r.from + r.to) / 2, half = Math.max(5, (r.to - r.from) * factor / 2);
    ts.setVisibleLogicalRange({ from: mid - half, to: mid + half });
  }
  // lightweight-charts wants strictly increasing times: one point per time, the last value wins
  function points(times, values) {
    const out = [];
    for (let i = 0; i < times.length; i++) {
      if (values[i] == null) continue;
      const p = { time: times[i], value: values[i] };
      if (out.length && out[out.length - 1].time >= p.time) { if (out[out.length - 1].time === p.time) out[out.length - 1] = p; continue; }
      out.push(p);
    }
    return out;
  }
  function dropCharts() {
    for (const chart of Object.values(state.charts)) chart.remove();
    state.charts = {};
  }

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
    const L = state.L;
    const d = await api(dataUrl("dashboard"));
    const m = d.metrics || {};
    const tabs = h("div", { class: "tabs", role: "group", "aria-label": L.nav_dashboard }, ...["today", "week", "month", "all"].map((p) =>
      h("button", { class: p === d.period ? "on" : "", "aria-pressed": String(p === d.period), "data-period": p,
        onclick: () => go("/app/?period=" + p) }, L["period_" + p])));
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
    const eq = h("div", { id: "equity", class: "chart", role: "img", "aria-label": L.equity });
    const dd = h("div", { id: "drawdown", class: "chart short", role: "img", "aria-label": L.drawdown });
    const rows = (d.by_symbol || []).map((s) => ({ label: s.symbol, value: s.net }));
    const widest = Math.max(1e-9, ...rows.map((r) => Math.abs(r.value)));
    const bySymbol = h("table", { id: "by-symbol", class: "bars", "data-drawn": String(rows.length) },
      h("tr", null, th(L.symbol), th(L.net_pnl), h("td", null)),
      ...rows.map((r) => {
        const bar = h("span", { class: "barfill " + (r.value < 0 ? "bg-down" : "bg-up") });
        bar.style.width = (Math.abs(r.value) / widest * 100).toFixed(1) + "%";  // CSSOM, allowed by the CSP
        return h("tr", null, th(r.label, "row"), h("td", { class: sign(r.value) }, money(r.value)), h("td", { class: "barcell" }, bar));
      }));
    const posTable = positions.length ? scroller(L.open_positions, h("table", { id: "positions" },
      h("tr", null, ...[L.symbol, L.side, L.volume, L.price, L.profit].map((x) => th(x))),
      ...positions.map((p) => h("tr", { "data-ticket": p.ticket },
        h("td", null, p.symbol), h("td", null, L[p.side] || p.side), h("td", null, num(p.volume)),
        h("td", { class: "px" }, num(p.price, p.digits)), h("td", { class: "pl " + sign(p.profit) }, money(p.profit))))))
      : h("p", { class: "note" }, L.no_positions);
    const sim = simMark(d);
    main().replaceChildren(tabs, sim ? h("div", { class: "controls" }, sim) : null, kpis,
      card(L.equity, eq), card(L.drawdown, dd),
      card(L.pnl_by_symbol, rows.length ? bySymbol : h("p", { class: "note", id: "no-trades" }, L.no_trades)),
      card(L.open_positions, posTable));
    const c = palette();
    const eqChart = makeChart(eq, "equity", d, { localization: { locale: state.me.locale, priceFormatter: (v) => num(v, 0) } });
    const eqData = points(d.equity.t, d.equity.v);
    eqChart.addSeries(LWC.AreaSeries, { lineColor: c.accent, topColor: alpha(c.accent, 0.35), bottomColor: alpha(c.accent, 0.02),
      lineWidth: 2 }).setData(eqData);
    eqChart.timeScale().fitContent();
    eq.dataset.drawn = String(eqData.length);
    const ddChart = makeChart(dd, "drawdown", d, { localization: { locale: state.me.locale, priceFormatter: (v) => pct(v) } });
    const ddData = points(d.drawdown.t, d.drawdown.v);
    ddChart.addSeries(LWC.AreaSeries, { lineColor: c.down, topColor: alpha(c.down, 0.02), bottomColor: alpha(c.down, 0.35),
      invertFilledArea: true, lineWidth: 1 }).setData(ddData);
    ddChart.timeScale().fitContent();
    dd.dataset.drawn = String(ddData.length);
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
    const L = state.L;
    const sym = h("select", { id: "symbol", onchange: () => go(`${path}?symbol=${sym.value}&tf=${tfs.value}`) },
      ...(state.me.symbols.includes(symbol) ? state.me.symbols : [symbol, ...state.me.symbols]).map((s) =>
        h("option", s === symbol ? { value: s, selected: "" } : { value: s }, s)));
    const tfs = h("select", { id: "tf", onchange: () => go(`${path}?symbol=${sym.value}&tf=${tfs.value}`) },
      ...state.me.timeframes.map((t) => h("option", t === tf ? { value: t, selected: "" } : { value: t }, t)));
    return h("div", { class: "controls" }, h("label", { for: "symbol" }, L.symbol), sym, h("label", { for: "tf" }, L.timeframe), tfs);
  }

  async function chart() {
    const L = state.L;
    const d = await api(dataUrl("chart"));
    const digits = d.digits, step = d.tf_seconds, c = palette();
    const label = (L.chart_label || "").replace("{symbol}", d.symbol).replace("{tf}", d.tf);
    const box = h("div", { id: "candles", class: "chart tall", role: "img", "aria-label": label });
    const b = d.bars;
    const price = h("span", { class: "price", id: "last-price" }, num(b.c[b.c.length - 1], digits));
    const ohlc = h("div", { class: "ohlc", id: "ohlc" });
    const legend = h("div", { class: "legend" },
      h("span", null, h("i", { class: "sw-warn" }), L.alert_level + " (" + d.levels.length + ")"),
      h("span", null, h("i", { class: "sw-up" }), L.your_trades + " (" + d.trades.length + ")"),
      h("span", null, h("i", { class: "sw-accent" }), L.signals + " (" + d.signals.length + ")"));
    const zoomBar = h("div", { class: "controls zoom", role: "group", "aria-label": label },
      h("button", { type: "button", id: "zoom-in", onclick: () => zoom(state.charts.candles, 0.7) }, L.zoom_in),
      h("button", { type: "button", id: "zoom-out", onclick: () => zoom(state.charts.candles, 1 / 0.7) }, L.zoom_out),
      h("button", { type: "button", id: "zoom-reset", onclick: () => state.charts.candles.timeScale().fitContent() }, L.zoom_reset));
    main().replaceChildren(pickers(d.symbol, d.tf, "/app/chart"),
      h("div", { class: "controls" }, h("strong", null, d.symbol), h("span", { class: "note" }, d.description), price, simMark(d)),
      card(d.symbol + " · " + d.tf, ohlc, box, zoomBar, legend));

    const chartApi = makeChart(box, "candles", d, { localization: { locale: state.me.locale, priceFormatter: (v) => num(v, digits) } });
    const minMove = Math.pow(10, -digits);
    // the user's alert levels stay in view (those within 10 % of the price: a far one would flatten the candles)
    const lastClose = b.c[b.c.length - 1];
    const near = d.levels.filter((v) => lastClose == null || Math.abs(v - lastClose) <= Math.abs(lastClose) * 0.1);
    const withLevels = (r, levels) => (!r || !levels.length ? r : { ...r, priceRange: {
      minValue: Math.min(r.priceRange.minValue, ...levels), maxValue: Math.max(r.priceRange.maxValue, ...levels) } });
    const candles = chartApi.addSeries(LWC.CandlestickSeries, { upColor: c.up, downColor: c.down, borderVisible: false,
      wickUpColor: c.up, wickDownColor: c.down, priceFormat: { type: "price", precision: digits, minMove },
      autoscaleInfoProvider: (original) => withLevels(original(), near) });
    const volume = chartApi.addSeries(LWC.HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" },
      lastValueVisible: false, priceLineVisible: false });
    chartApi.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    const bars = b.t.map((t, i) => ({ time: t, open: b.o[i], high: b.h[i], low: b.l[i], close: b.c[i] }));
    const volColour = (bar) => alpha(bar.close >= bar.open ? c.up : c.down, 0.45);
    const vols = bars.map((bar, i) => ({ time: bar.time, value: (b.v || [])[i] || 0, color: volColour(bar) }));
    candles.setData(bars);
    volume.setData(vols);
    box.dataset.drawn = String(bars.length);

    for (const level of d.levels) {
      candles.createPriceLine({ price: level, color: c.warn, lineWidth: 1, lineStyle: LWC.LineStyle.Dashed, axisLabelVisible: true,
        title: L.alert_level });
    }
    for (const p of d.positions) {
      candles.createPriceLine({ price: p.price_open, color: p.side === "buy" ? c.up : c.down, lineWidth: 1,
        lineStyle: LWC.LineStyle.Solid, axisLabelVisible: true, title: (L[p.side] || p.side) + " " + num(p.volume) });
    }
    // markers sit on the bar they happened in: trades, the consensus's calls, and each agent's calls per bar
    const known = new Set(bars.map((x) => x.time)), barOf = (t) => Math.floor(t / step) * step;
    const markers = [];
    for (const t of d.trades) {
      const time = barOf(t.time), buy = t.side === "buy";
      if (known.has(time)) markers.push({ time, position: buy ? "belowBar" : "aboveBar", color: buy ? c.up : c.down,
        shape: buy ? "arrowUp" : "arrowDown", text: (L[t.side] || t.side) + " " + num(t.volume) });
    }
    const agentCalls = {};
    for (const s of d.signals) {
      const time = barOf(s.time), buy = s.direction === "buy";
      if (!known.has(time)) continue;
      if (s.agent === "consensus") {
        markers.push({ time, position: buy ? "belowBar" : "aboveBar", color: c.accent, shape: buy ? "arrowUp" : "arrowDown" });
      } else {
        (agentCalls[time + s.direction] = agentCalls[time + s.direction] || { time, buy, names: [] }).names.push(s.agent);
      }
    }
    for (const g of Object.values(agentCalls)) {  // one small dot per bar and side; the crosshair label names the agents
      markers.push({ time: g.time, position: g.buy ? "belowBar" : "aboveBar", color: alpha(c.accent, 0.55), shape: "circle", size: 0.4 });
    }
    markers.sort((x, y) => x.time - y.time);
    LWC.createSeriesMarkers(candles, markers);
    box.dataset.markers = String(markers.length);

    // the crosshair's bar in words (OHLC, volume, who called it); the latest bar when the pointer is away
    const callsAt = (time) => Object.values(agentCalls).filter((g) => g.time === time)
      .map((g) => g.names.join(", ") + " " + (g.buy ? "▲" : "▼")).join(" · ");
    function showBar(bar, vol) {
      if (!bar) return;
      const item = (key, v) => h("span", null, h("span", { class: "k" }, L[key] + " "), v);
      const calls = callsAt(bar.time);
      ohlc.replaceChildren(...[h("span", { class: "when" }, when(bar.time)), item("open", num(bar.open, digits)),
        item("high", num(bar.high, digits)), item("low", num(bar.low, digits)), item("close", num(bar.close, digits)),
        vol == null ? null : item("volume", num(vol, 0)), calls ? h("span", { class: "calls" }, calls) : null].filter(Boolean));
      ohlc.dataset.time = String(bar.time);
      ohlc.className = "ohlc " + (bar.close >= bar.open ? "up" : "down");
    }
    const latest = () => showBar(bars[bars.length - 1], vols.length ? vols[vols.length - 1].value : null);
    chartApi.subscribeCrosshairMove((param) => {
      const bar = param.time != null ? param.seriesData.get(candles) : null;
      const vol = param.time != null ? param.seriesData.get(volume) : null;
      if (bar) { showBar({ time: param.time, ...bar }, vol ? vol.value : null); ohlc.dataset.hover = "1"; }
      else { latest(); ohlc.dataset.hover = ""; }
    });
    latest();

    watch([d.symbol], (t) => {
      if (t.s !== d.symbol) return;
      const time = barOf(Math.floor(t.t / 1000));
      let bar = bars[bars.length - 1], vol = vols[vols.length - 1];
      if (!bar || time > bar.time) {
        bar = { time, open: t.b, high: t.b, low: t.b, close: t.b }; vol = { time, value: 0, color: volColour(bar) };
        bars.push(bar); vols.push(vol); known.add(time);
      } else if (time === bar.time) {
        bar.close = t.b; bar.high = Math.max(bar.high, t.b); bar.low = Math.min(bar.low, t.b);
      } else return;  // a tick from a bar already drawn as closed
      vol.value += 1; vol.color = volColour(bar);
      candles.update({ ...bar }); volume.update({ ...vol });
      box.dataset.drawn = String(bars.length);
      price.textContent = num(t.b, digits); price.dataset.ticks = String(state.ticks);
      if (!ohlc.dataset.hover) latest();
    });
    document.body.dataset.ready = "chart";
  }

  async function agents() {
    const L = state.L;
    const d = await api(dataUrl("agents"));
    const kids = [pickers(d.symbol, d.tf, "/app/agents")];
    const c = d.consensus;
    const sim = simMark(d);
    if (sim) kids.push(h("div", { class: "controls" }, sim));
    if (c) kids.push(h("div", { class: "kpis" },
      kpi("kpi-consensus", L.consensus, L[c.direction] || c.direction, dirClass(c.direction)),
      kpi("kpi-confidence", L.confidence, c.confidence == null ? "—" : pct(c.confidence * 100)),
      kpi("kpi-agreement", L.agreement, c.agreement == null ? "—" : pct(c.agreement * 100))));
    const votes = d.votes || [];
    kids.push(card(L.votes, votes.length ? scroller(L.votes, h("table", { id: "votes" },
      h("tr", null, ...[L.agent, L.vote, L.confidence, L.weight, L.hit_rate].map((x) => th(x))),
      ...votes.map((v) => h("tr", null, th(v.agent, "row"), h("td", { class: dirClass(v.direction) }, L[v.direction] || v.direction),
        h("td", null, v.confidence == null ? "—" : pct(v.confidence * 100)), h("td", null, num(v.weight, 2)), h("td", null, v.hit_rate == null ? "—" : pct(v.hit_rate * 100))))))
      : h("p", { class: "note" }, L.no_signals)));

    // the consensus history: every agent's vote over the last bars (and the consensus), newest on the right
    const ch = d.consensus_history || { t: [], agents: {}, consensus: { d: [], c: [] } };
    const names = Object.keys(ch.agents);
    const glyph = (dir) => (dir === 1 ? "▲" : dir === -1 ? "▼" : dir === 0 ? "·" : "");
    const word = (dir) => (dir === 1 ? L.buy : dir === -1 ? L.sell : dir === 0 ? L.flat : "—");
    const hour = (t) => new Date(t * 1000).toLocaleTimeString(state.me.locale, { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
    const cell = (dir, conf, t) => h("td", { class: "vote " + dirClass(dir), title: when(t) + " · " + word(dir) + (conf ? " " + pct(conf * 100) : "") },
      h("span", { "aria-hidden": "true" }, glyph(dir)), h("span", { class: "sr" }, word(dir)));
    const grid = ch.t.length ? scroller(L.vote_history, h("table", { id: "vote-history", class: "grid" },
      h("tr", null, h("td", null), ...ch.t.map((t) => th(hour(t)))),
      h("tr", { class: "consensus" }, th(L.consensus, "row"), ...ch.t.map((t, i) => cell(ch.consensus.d[i], ch.consensus.c[i], t))),
      ...names.map((n) => h("tr", null, th(n, "row"), ...ch.t.map((t, i) => cell(ch.agents[n].d[i], ch.agents[n].c[i], t))))))
      : h("p", { class: "note", id: "no-votes" }, L.no_votes);
    kids.push(card(L.vote_history, ch.t.length ? h("p", { class: "note" }, L.vote_history_hint) : null, grid));
    const barWeights = h("div", { id: "bar-weights", class: "chart short", role: "img", "aria-label": L.weights_per_bar });
    if (ch.t.length) kids.push(card(L.weights_per_bar, barWeights, agentLegend(names)));

    const hist = d.history || { t: [], agents: {} };
    const histNames = Object.keys(hist.agents);
    const weights = h("div", { id: "weights", class: "chart", role: "img", "aria-label": L.weights });
    kids.push(card(L.weights, hist.t.length ? weights : h("p", { class: "note" }, L.no_history), agentLegend(histNames)));
    const signals = (d.signals || []).slice(0, 30);
    if (signals.length) kids.push(card(L.signals, scroller(L.signals, h("table", { id: "signals" },
      h("tr", null, h("td", null), ...[L.agent, L.vote, L.confidence].map((x) => th(x)), h("td", null)),
      ...signals.map((s) => h("tr", null, h("td", null, when(s.time)), h("td", null, s.agent === "consensus" ? L.consensus : s.agent),
        h("td", { class: dirClass(s.direction) }, L[s.direction] || s.direction),
        h("td", null, pct(s.confidence * 100)), h("td", { class: s.status === "hit" ? "up" : s.status === "miss" ? "down" : "note" }, L["status_" + s.status] || s.status)))))));
    main().replaceChildren(...kids);
    const lines = (el, name, t, series, pick) => {
      const chartApi = makeChart(el, name, d, { localization: { locale: state.me.locale, priceFormatter: (v) => num(v, 2) } });
      let drawn = 0;
      series.forEach((n, i) => {
        const data = points(t, pick(n));
        chartApi.addSeries(LWC.LineSeries, { color: AGENT_COLOURS[i % AGENT_COLOURS.length], lineWidth: 2, title: n,
          lastValueVisible: false, priceLineVisible: false }).setData(data);
        drawn += data.length;
      });
      chartApi.timeScale().fitContent();
      el.dataset.drawn = String(drawn);
    };
    if (ch.t.length) lines(barWeights, "bar-weights", ch.t, names, (n) => ch.agents[n].w);
    if (hist.t.length) lines(weights, "weights", hist.t, histNames, (n) => hist.agents[n]);
    const scroll = $("#vote-history") && $("#vote-history").parentElement;
    if (scroll) scroll.scrollLeft = scroll.scrollWidth;  // newest bars in view
    watch([], null);
    document.body.dataset.ready = "agents";
  }

  function agentLegend(names) {
    return h("div", { class: "legend" }, ...names.map((n, i) => h("span", null, h("i", { class: "c" + (i % AGENT_COLOURS.length) }), n)));
  }

  // the deferred lightweight-charts script runs after this one: the first page waits for it (or for the load
  // event, when it could not be loaded: the page then reports the error)
  function chartsLoaded() {
    if (window.LightweightCharts || document.readyState === "complete") return Promise.resolve();
    return new Promise((done) => {
      window.addEventListener("DOMContentLoaded", done, { once: true });
      window.addEventListener("load", done, { once: true });
    });
  }

  function currentPage() {
    const path = location.pathname.replace(/\/+$/, "");
    return path.endsWith("/chart") ? "chart" : path.endsWith("/agents") ? "agents" : "dashboard";
  }

  async function route() {
    const page = currentPage();
    for (const a of document.querySelectorAll("#nav a")) {
      a.classList.toggle("on", a.dataset.page === page);
      if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    $("#page-title").textContent = state.L["nav_" + page] || "";
    document.body.dataset.ready = "";
    dropCharts();
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
    $("#nav").setAttribute("aria-label", state.L.title);
    for (const a of document.querySelectorAll("#nav a")) {
      a.textContent = state.L[a.dataset.label];
      a.addEventListener("click", (ev) => { ev.preventDefault(); go(a.getAttribute("href")); });
    }
    const credit = $("#credit");
    credit.replaceChildren((state.L.charts_by || "{name}").split("{name}")[0],
      h("a", { href: "https://www.tradingview.com/", target: "_blank", rel: "noopener noreferrer" }, "TradingView Lightweight Charts™"),
      (state.L.charts_by || "{name}").split("{name}")[1] || "");
    window.addEventListener("popstate", route);
    connect();
    await chartsLoaded();
    await route();
  }

  window.HTApp = { state, contrast, rgb };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
