/* Small canvas charts for the web view: lines/areas over time, horizontal bars, candles.
   No dependencies. Every chart redraws on resize and marks its canvas with data-drawn (points drawn). */
"use strict";
(function () {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function setup(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 300, h = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, w, h };
  }

  function niceTicks(min, max, count) {
    if (!(max > min)) { const pad = Math.abs(min) * 0.01 || 1; min -= pad; max += pad; }
    const raw = (max - min) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(v);
    return { ticks: out, min, max };
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const opts = span > 86400 * 200 ? { month: "short", year: "2-digit" }
      : span > 86400 * 3 ? { month: "short", day: "numeric" } : { hour: "2-digit", minute: "2-digit" };
    return d.toLocaleString(document.documentElement.lang || undefined, opts);
  }

  function frame(ctx, w, h, yMin, yMax, t0, t1, fmt, pad) {
    const { ticks, min, max } = niceTicks(yMin, yMax, h > 200 ? 5 : 3);
    const plot = { x: pad.l, y: pad.t, w: w - pad.l - pad.r, h: h - pad.t - pad.b, min, max };
    ctx.strokeStyle = css("--grid"); ctx.fillStyle = css("--hint"); ctx.lineWidth = 1;
    ctx.textAlign = "left"; ctx.textBaseline = "middle";
    for (const v of ticks) {
      const y = plot.y + plot.h - ((v - min) / (max - min)) * plot.h;
      ctx.beginPath(); ctx.moveTo(plot.x, y + 0.5); ctx.lineTo(plot.x + plot.w, y + 0.5); ctx.stroke();
      ctx.fillText(fmt(v), plot.x + plot.w + 4, y);
    }
    if (t1 > t0) {
      ctx.textBaseline = "top";
      const n = Math.max(2, Math.floor(plot.w / 90));
      for (let i = 0; i <= n; i++) {
        const t = t0 + ((t1 - t0) * i) / n, x = plot.x + (plot.w * i) / n;
        ctx.textAlign = i === 0 ? "left" : i === n ? "right" : "center";
        ctx.fillText(timeLabel(t, t1 - t0), x, plot.y + plot.h + 4);
      }
    }
    return plot;
  }

  /* series: [{v: [...], color, fill: bool}], sharing t. */
  function line(canvas, t, series, opts) {
    opts = opts || {};
    const { ctx, w, h } = setup(canvas);
    let lo = Infinity, hi = -Infinity, drawn = 0;
    for (const s of series) for (const v of s.v) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (opts.zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
    if (!t.length || !isFinite(lo)) { canvas.dataset.drawn = "0"; return; }
    const fmt = opts.format || ((v) => v.toFixed(0));
    const plot = frame(ctx, w, h, lo, hi, t[0], t[t.length - 1], fmt, { l: 4, r: opts.right || 56, t: 6, b: 18 });
    const span = t[t.length - 1] - t[0] || 1;
    const X = (ti) => plot.x + ((ti - t[0]) / span) * plot.w;
    const Y = (v) => plot.y + plot.h - ((v - plot.min) / (plot.max - plot.min)) * plot.h;
    for (const s of series) {
      ctx.beginPath();
      for (let i = 0; i < s.v.length; i++) {
        const x = X(t[i]), y = Y(s.v[i]);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      drawn += s.v.length;
      ctx.strokeStyle = s.color; ctx.lineWidth = 1.6; ctx.stroke();
      if (s.fill) {
        const base = Y(opts.zero ? 0 : plot.min);
        ctx.lineTo(X(t[s.v.length - 1]), base); ctx.lineTo(X(t[0]), base); ctx.closePath();
        ctx.globalAlpha = 0.18; ctx.fillStyle = s.color; ctx.fill(); ctx.globalAlpha = 1;
      }
    }
    canvas.dataset.drawn = String(drawn);
  }

  /* Horizontal bars: rows [{label, value}] */
  function bars(canvas, rows, format) {
    const dpr = window.devicePixelRatio || 1;
    canvas.style.height = Math.max(60, rows.length * 26 + 10) + "px";
    const { ctx, w } = setup(canvas);
    if (!rows.length) { canvas.dataset.drawn = "0"; return; }
    const max = Math.max(...rows.map((r) => Math.abs(r.value)), 1e-9);
    const labelW = 70, valueW = 80, mid = labelW + (w - labelW - valueW) / 2, half = (w - labelW - valueW) / 2;
    rows.forEach((r, i) => {
      const y = 5 + i * 26, len = (Math.abs(r.value) / max) * half;
      ctx.fillStyle = css("--text"); ctx.textAlign = "left"; ctx.textBaseline = "middle";
      ctx.fillText(r.label, 0, y + 10);
      ctx.fillStyle = r.value >= 0 ? css("--up") : css("--down");
      ctx.fillRect(r.value >= 0 ? mid : mid - len, y + 2, Math.max(len, 1), 16);
      ctx.fillStyle = css("--text"); ctx.textAlign = "right";
      ctx.fillText(format(r.value), w, y + 10);
    });
    ctx.strokeStyle = css("--grid"); ctx.beginPath(); ctx.moveTo(mid + 0.5, 0); ctx.lineTo(mid + 0.5, rows.length * 26 + 6); ctx.stroke();
    canvas.dataset.drawn = String(rows.length);
    void dpr;
  }

  /* Candles with horizontal levels, trade and signal markers. d: {t,o,h,l,c}, extra: {levels, trades, signals,
     positions, last, digits, tfSeconds, labels} */
  function candles(canvas, d, extra) {
    const { ctx, w, h } = setup(canvas);
    const n = d.t.length;
    if (!n) { canvas.dataset.drawn = "0"; return; }
    let lo = Math.min(...d.l), hi = Math.max(...d.h);
    for (const p of extra.positions || []) { lo = Math.min(lo, p.price_open); hi = Math.max(hi, p.price_open); }
    const inRange = (extra.levels || []).filter((v) => v > lo - (hi - lo) * 0.5 && v < hi + (hi - lo) * 0.5);
    for (const v of inRange) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const digits = extra.digits || 5, fmt = extra.format || ((v) => v.toFixed(digits));
    const plot = frame(ctx, w, h, lo, hi, d.t[0], d.t[n - 1], fmt, { l: 4, r: 8 + digits * 7 + 10, t: 8, b: 18 });
    const step = plot.w / n, bodyW = Math.max(1, step * 0.65);
    const X = (i) => plot.x + step * (i + 0.5);
    const Y = (v) => plot.y + plot.h - ((v - plot.min) / (plot.max - plot.min)) * plot.h;
    const tIndex = (t) => Math.min(n - 1, Math.max(0, Math.floor((t - d.t[0]) / (extra.tfSeconds || 3600))));
    const up = css("--up"), down = css("--down");
    for (let i = 0; i < n; i++) {
      const rising = d.c[i] >= d.o[i];
      ctx.strokeStyle = ctx.fillStyle = rising ? up : down;
      ctx.beginPath(); ctx.moveTo(X(i) + 0.5, Y(d.h[i])); ctx.lineTo(X(i) + 0.5, Y(d.l[i])); ctx.stroke();
      const top = Y(Math.max(d.o[i], d.c[i])), bottom = Y(Math.min(d.o[i], d.c[i]));
      ctx.fillRect(X(i) - bodyW / 2, top, bodyW, Math.max(1, bottom - top));
    }
    const hline = (v, color, dash, text) => {
      const y = Y(v);
      ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(plot.x, y + 0.5); ctx.lineTo(plot.x + plot.w, y + 0.5); ctx.stroke(); ctx.setLineDash([]);
      if (text) { ctx.fillStyle = color; ctx.textAlign = "left"; ctx.textBaseline = "bottom"; ctx.fillText(text, plot.x + 2, y - 1); }
    };
    for (const v of inRange) hline(v, css("--warn"), [4, 3], (extra.labels.alert_level || "") + " " + fmt(v));
    for (const p of extra.positions || []) hline(p.price_open, p.side === "buy" ? up : down, [1, 2], p.side + " " + p.volume);
    for (const tr of extra.trades || []) {  // triangles: up for buys, down for sells
      const x = X(tIndex(tr.time)), y = Y(tr.price), s = 6, buy = tr.side === "buy";
      ctx.fillStyle = buy ? up : down; ctx.strokeStyle = css("--text"); ctx.lineWidth = 0.8;
      ctx.beginPath();
      if (buy) { ctx.moveTo(x, y - s); ctx.lineTo(x - s, y + s); ctx.lineTo(x + s, y + s); }
      else { ctx.moveTo(x, y + s); ctx.lineTo(x - s, y - s); ctx.lineTo(x + s, y - s); }
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    for (const sg of extra.signals || []) {  // circles above/below the bar
      const i = tIndex(sg.time), buy = sg.direction === "buy";
      if (sg.direction !== "buy" && sg.direction !== "sell") continue;
      const y = buy ? Y(d.l[i]) + 10 : Y(d.h[i]) - 10;
      ctx.fillStyle = buy ? up : down; ctx.globalAlpha = sg.agent === "consensus" ? 1 : 0.45;
      ctx.beginPath(); ctx.arc(X(i), y, sg.agent === "consensus" ? 4.5 : 3, 0, Math.PI * 2); ctx.fill(); ctx.globalAlpha = 1;
    }
    if (extra.last != null) hline(extra.last, css("--accent"), [], "");
    if (extra.last != null) {
      const y = Y(extra.last);
      ctx.fillStyle = css("--accent"); ctx.fillRect(plot.x + plot.w + 2, y - 8, w - plot.x - plot.w - 2, 16);
      ctx.fillStyle = "#fff"; ctx.textAlign = "left"; ctx.textBaseline = "middle"; ctx.fillText(fmt(extra.last), plot.x + plot.w + 4, y);
    }
    canvas.dataset.drawn = String(n);
  }

  window.HTChart = { line, bars, candles };
})();
