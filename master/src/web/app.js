// Hatchery web UI: polls the master's Locust-compatible API and renders it.
// No dependencies, no network access beyond the master. Every URL is relative, so the UI works
// under any base path (a reverse proxy, --web-base-path).
(function () {
  "use strict";

  var POLL_MS = 2000; // Locust's rate
  var MAX_POINTS = 1800; // one hour at one point per 2 s
  var FETCH_TIMEOUT_MS = 8000;
  var ACTIVE = { spawning: 1, running: 1, stopping: 1 };

  function $(id) { return document.getElementById(id); }

  var ui = {
    data: null,
    tab: "stats",
    sort: { key: null, dir: 1 },
    points: [],
    lastState: null,
    hostPrefill: null,
    formMode: "new",
    pollTimer: 0,
    pollSeq: 0,
    statsHtml: "",
    failuresHtml: "",
    workersHtml: "",
    exceptionsHtml: "",
    exceptionsSeq: 0,
    busy: false
  };

  // ---------- formatting ----------

  var intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function esc(s) {
    return String(s == null ? "" : s)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmtInt(v) { return isNum(v) ? intFmt.format(v) : "–"; }
  // Response times are float milliseconds; keep sub-millisecond detail where it matters.
  function fmtMs(v) {
    if (!isNum(v)) return "–";
    var a = Math.abs(v);
    if (a >= 100) return intFmt.format(Math.round(v));
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }
  function fmtRate(v) {
    if (!isNum(v)) return "–";
    return Math.abs(v) >= 1000 ? intFmt.format(Math.round(v)) : v.toFixed(1);
  }
  function fmtPct(ratio) {
    if (!isNum(ratio)) return "–";
    var p = ratio * 100;
    if (p === 0) return "0%";
    if (p < 0.1) return "<0.1%";
    return (p < 10 ? p.toFixed(1) : Math.round(p)) + "%";
  }
  function fmtAxis(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
    if (v >= 100 || v === Math.round(v)) return intFmt.format(v);
    return String(+v.toPrecision(3));
  }
  function pad2(n) { return n < 10 ? "0" + n : "" + n; }
  function fmtClock(ms, withSeconds) {
    var d = new Date(ms);
    var s = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    return withSeconds ? s + ":" + pad2(d.getSeconds()) : s;
  }

  // ---------- network ----------

  function request(url, opts) {
    opts = opts || {};
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var t = ctl ? setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS) : 0;
    if (ctl) opts.signal = ctl.signal;
    opts.cache = "no-store";
    opts.credentials = "same-origin";
    return fetch(url, opts).finally(function () { clearTimeout(t); });
  }

  // Reads a Locust-style reply ({success, message} as JSON, or plain text).
  function readReply(r) {
    return r.text().then(function (text) {
      var body = null;
      try { body = JSON.parse(text); } catch (e) { /* plain text */ }
      var ok = r.ok && !(body && body.success === false);
      var msg = (body && (body.message || body.error)) || (!r.ok ? text || r.status + " " + r.statusText : "");
      return { ok: ok, message: msg, body: body };
    });
  }

  function schedule(delay) {
    clearTimeout(ui.pollTimer);
    ui.pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    clearTimeout(ui.pollTimer);
    var seq = ++ui.pollSeq;
    request("stats/requests").then(function (r) {
      if (r.ok) return r.json();
      return readReply(r).then(function (rep) { throw new Error(rep.message || "HTTP " + r.status); });
    }).then(function (doc) {
      if (seq !== ui.pollSeq) return; // a newer poll was started; let it render
      setConn(null);
      onStats(doc);
    }).catch(function (err) {
      if (seq !== ui.pollSeq) return;
      var msg = err && err.name === "AbortError" ? "the master did not answer in time" : (err && err.message) || "network error";
      setConn("Cannot read statistics from the master (" + msg + "). Retrying every 2 s.");
    }).finally(function () {
      if (seq === ui.pollSeq) schedule(POLL_MS);
    });
  }

  function setConn(msg) {
    var el = $("conn");
    if (!msg) { el.hidden = true; el.textContent = ""; return; }
    el.textContent = msg;
    el.hidden = false;
  }

  // ---------- one render per poll ----------

  function onStats(doc) {
    ui.data = doc;
    var st = doc.state || "";
    addPoint(doc, st);
    renderTop(doc, st);
    renderControls(st);
    renderCounts(doc);
    renderTab();
    ui.lastState = st;
  }

  function renderTop(doc, st) {
    var host = doc.host || "";
    var hostEl = $("m-host");
    hostEl.textContent = host || "–";
    hostEl.title = host;
    var stEl = $("m-state");
    stEl.textContent = st || "–";
    stEl.setAttribute("data-state", st);
    $("m-users").textContent = fmtInt(doc.user_count);
    $("m-workers").textContent = fmtInt(doc.worker_count);
    $("m-rps").textContent = fmtRate(doc.current_rps);
    var fail = $("m-fail");
    fail.textContent = fmtPct(doc.fail_ratio);
    fail.classList.toggle("bad", isNum(doc.fail_ratio) && doc.fail_ratio > 0);
    document.title = "Hatchery · " + (st || "…") + (host ? " · " + host : "");
    if (host && ui.formMode === "new") {
      var input = $("f-host");
      if (!input.value || input.value === ui.hostPrefill) input.value = host;
      ui.hostPrefill = host;
    }
  }

  function renderControls(st) {
    var active = !!ACTIVE[st];
    var idle = st === "ready" || st === "stopped";
    $("btn-edit").hidden = !(st === "spawning" || st === "running");
    $("btn-stop").hidden = !active;
    $("btn-stop").disabled = st === "stopping";
    $("btn-new").hidden = st !== "stopped";
    var dialogOpen = $("dialog").open;
    $("start-panel").hidden = !idle || dialogOpen;
    if (idle && !dialogOpen && ui.formMode !== "new") setFormMode("new");
    // An edit dialog makes no sense once the run has ended.
    if (dialogOpen && ui.formMode === "edit" && !active) closeDialog();
    $("start-sub").textContent = st === "stopped"
      ? "The previous test has stopped; its statistics stay below until the next one starts."
      : "Users are spread across the connected workers.";
  }

  function renderCounts(doc) {
    setCount("c-failures", (doc.errors || []).length);
    setCount("c-workers", doc.worker_count);
  }
  function setCount(id, n) {
    var el = $(id);
    el.hidden = !(n > 0);
    el.textContent = n > 0 ? fmtInt(n) : "";
  }

  function renderTab() {
    var doc = ui.data;
    switch (ui.tab) {
      case "stats": if (doc) renderStats(doc); break;
      case "charts": renderCharts(); break;
      case "failures": if (doc) renderFailures(doc); break;
      case "workers": if (doc) renderWorkers(doc); break;
      case "exceptions": loadExceptions(); break;
    }
  }

  // ---------- statistics table ----------

  var STAT_COLS = [
    ["method", "l", function (v) { return esc(v || ""); }],
    ["name", "l name", function (v) { return esc(v); }],
    ["num_requests", "", fmtInt],
    ["num_failures", "", fmtInt],
    ["median_response_time", "", fmtMs],
    ["response_time_percentile_0.95", "", fmtMs],
    ["response_time_percentile_0.99", "", fmtMs],
    // From the intended send time: only paced users' rows have them (`corrected`), and the
    // columns show only while some row does.
    ["intended_0.95", "", fmtMs, true],
    ["intended_0.99", "", fmtMs, true],
    ["avg_response_time", "", fmtMs],
    ["min_response_time", "", fmtMs],
    ["max_response_time", "", fmtMs],
    ["avg_content_length", "", function (v) { return isNum(v) ? intFmt.format(Math.round(v)) : "–"; }],
    ["current_rps", "", fmtRate],
    ["current_fail_per_sec", "", fmtRate]
  ];

  function rowHtml(s, cls, intended) {
    var h = cls ? "<tr class=\"" + cls + "\">" : "<tr>";
    for (var i = 0; i < STAT_COLS.length; i++) {
      var c = STAT_COLS[i];
      if (c[3] && !intended) continue;
      var v = s[c[0]];
      var k = c[1];
      if (c[0] === "num_failures" && v > 0) k += " bad";
      h += k ? "<td class=\"" + k + "\">" : "<td>";
      h += c[2](v);
      h += "</td>";
    }
    return h + "</tr>";
  }

  function isAggregated(s) { return s.name === "Aggregated" && !s.method; }

  function compareBy(key, dir) {
    return function (a, b) {
      var x = a[key], y = b[key];
      if (typeof x === "string" || typeof y === "string") {
        return dir * String(x || "").localeCompare(String(y || ""));
      }
      x = isNum(x) ? x : -Infinity;
      y = isNum(y) ? y : -Infinity;
      return dir * (x < y ? -1 : x > y ? 1 : 0);
    };
  }

  function renderStats(doc) {
    var rows = doc.stats || [];
    var agg = null, list = [], intended = false;
    for (var i = 0; i < rows.length; i++) {
      var c = rows[i].corrected;
      if (c) {
        intended = true;
        rows[i]["intended_0.95"] = c["response_time_percentile_0.95"];
        rows[i]["intended_0.99"] = c["response_time_percentile_0.99"];
      }
      if (isAggregated(rows[i])) agg = rows[i]; else list.push(rows[i]);
    }
    var heads = $("stats-head").querySelectorAll("th[data-intended]");
    for (var k = 0; k < heads.length; k++) heads[k].hidden = !intended;
    if (ui.sort.key) list.sort(compareBy(ui.sort.key, ui.sort.dir));
    var parts = new Array(list.length + 1);
    for (var j = 0; j < list.length; j++) parts[j] = rowHtml(list[j], "", intended);
    parts[list.length] = agg ? rowHtml(agg, "total", intended) : "";
    var html = parts.join("");
    if (html !== ui.statsHtml) {
      $("stats-body").innerHTML = html;
      ui.statsHtml = html;
    }
    $("stats-empty").hidden = list.length > 0 || (agg && agg.num_requests > 0);
  }

  function onSortClick(e) {
    var th = e.target.closest("th[data-key]");
    if (!th) return;
    var key = th.getAttribute("data-key");
    var textual = key === "method" || key === "name";
    if (ui.sort.key === key) {
      ui.sort.dir = -ui.sort.dir;
    } else {
      ui.sort.key = key;
      ui.sort.dir = textual ? 1 : -1; // numbers: largest first
    }
    var ths = $("stats-head").querySelectorAll("th");
    for (var i = 0; i < ths.length; i++) ths[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ui.sort.dir > 0 ? "ascending" : "descending");
    if (ui.data) renderStats(ui.data);
  }

  // ---------- failures, workers, exceptions ----------

  function renderFailures(doc) {
    var errs = (doc.errors || []).slice().sort(function (a, b) { return (b.occurrences || 0) - (a.occurrences || 0); });
    var h = "";
    for (var i = 0; i < errs.length; i++) {
      var e = errs[i];
      h += "<tr><td class=\"l\">" + esc(e.method || "") + "</td><td class=\"l name\">" + esc(e.name) +
        "</td><td class=\"l err\">" + esc(e.error) + "</td><td>" + fmtInt(e.occurrences) + "</td></tr>";
    }
    if (h !== ui.failuresHtml) { $("failures-body").innerHTML = h; ui.failuresHtml = h; }
    $("failures-empty").hidden = errs.length > 0;
  }

  function renderWorkers(doc) {
    var ws = (doc.workers || []).slice().sort(function (a, b) { return String(a.id).localeCompare(String(b.id)); });
    var h = "";
    for (var i = 0; i < ws.length; i++) {
      var w = ws[i];
      var cpu = isNum(w.cpu_usage) ? w.cpu_usage : null;
      var mem = isNum(w.memory_usage) ? (w.memory_usage / 1048576).toFixed(1) : "–";
      h += "<tr><td class=\"l mono\">" + esc(w.id) + "</td><td class=\"l\"><span class=\"state small\" data-state=\"" + esc(w.state) + "\">" +
        esc(w.state) + "</span></td><td>" + fmtInt(w.user_count) + "</td><td class=\"" + (cpu != null && cpu > 90 ? "bad" : "") + "\">" +
        (cpu == null ? "–" : cpu.toFixed(1) + "%") + "</td><td>" + mem + "</td></tr>";
    }
    if (h !== ui.workersHtml) { $("workers-body").innerHTML = h; ui.workersHtml = h; }
    $("workers-empty").hidden = ws.length > 0;
  }

  function loadExceptions() {
    var seq = ++ui.exceptionsSeq;
    request("exceptions").then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      if (seq !== ui.exceptionsSeq) return;
      renderExceptions((body && body.exceptions) || [], null);
    }).catch(function (err) {
      if (seq !== ui.exceptionsSeq) return;
      renderExceptions([], "Exceptions are not available from this master (" + (err.message || "error") + ").");
    });
  }

  function renderExceptions(list, problem) {
    var h = "";
    for (var i = 0; i < list.length; i++) {
      var x = list[i];
      var nodes = Array.isArray(x.nodes) ? x.nodes.join(", ") : x.nodes;
      h += "<tr><td>" + fmtInt(x.count) + "</td><td class=\"l err\">" + esc(x.msg) + "</td><td class=\"l\"><pre>" +
        esc(x.traceback) + "</pre></td><td class=\"l mono\">" + esc(nodes) + "</td></tr>";
    }
    if (h !== ui.exceptionsHtml) { $("exceptions-body").innerHTML = h; ui.exceptionsHtml = h; }
    var empty = $("exceptions-empty");
    empty.textContent = problem || "No exceptions.";
    empty.hidden = list.length > 0;
    setCount("c-exceptions", list.length);
  }

  // ---------- chart data ----------

  function pointFrom(doc, t) {
    var p = doc.current_response_time_percentiles || {};
    return {
      t: t,
      rps: num(doc.current_rps),
      fps: num(doc.current_fail_per_sec),
      p50: num(p["response_time_percentile_0.5"]),
      p95: num(p["response_time_percentile_0.95"]),
      users: num(doc.user_count)
    };
  }
  function num(v) { return isNum(v) ? v : null; }

  function addPoint(doc, st) {
    // Points while a test runs, and one more when it stops so the user line comes down.
    var wasActive = !!ACTIVE[ui.lastState];
    if (!ACTIVE[st] && !(st === "stopped" && wasActive)) return;
    var t = Date.now();
    var last = ui.points[ui.points.length - 1];
    if (last && t <= last.t) return;
    ui.points.push(pointFrom(doc, t));
    if (ui.points.length > MAX_POINTS) ui.points.splice(0, ui.points.length - MAX_POINTS);
  }

  function loadHistory() {
    return request("stats/history").then(function (r) {
      if (r.status !== 200) return null;
      return r.json();
    }).then(function (arr) {
      if (!Array.isArray(arr)) return;
      var pts = [];
      for (var i = 0; i < arr.length; i++) {
        var h = arr[i];
        if (!h || !isNum(h.time)) continue;
        pts.push({
          t: h.time * 1000,
          rps: num(h.current_rps),
          fps: num(h.current_fail_per_sec),
          p50: num(h["response_time_percentile_0.5"]),
          p95: num(h["response_time_percentile_0.95"]),
          users: num(h.user_count)
        });
      }
      pts.sort(function (a, b) { return a.t - b.t; });
      // The master keeps a point a second for the whole run: show its last hour, thinned to
      // the client's cap.
      if (pts.length) {
        var from = pts[pts.length - 1].t - 3600 * 1000;
        var first = 0;
        while (pts[first].t < from) first++;
        pts = pts.slice(first);
      }
      var stride = Math.ceil(pts.length / MAX_POINTS);
      if (stride > 1) pts = pts.filter(function (_, k) { return (pts.length - 1 - k) % stride === 0; });
      ui.points = pts;
    }).catch(function () { /* no history: charts start empty */ });
  }

  // ---------- SVG charts ----------

  var SVGNS = "http://www.w3.org/2000/svg";
  var CHARTS = [
    { id: "chart-rps", legend: "legend-rps", unit: "/s", series: [
      { key: "rps", label: "RPS", cls: "s1", area: true },
      { key: "fps", label: "Failures/s", cls: "s-bad" }] },
    { id: "chart-rt", legend: "legend-rt", unit: " ms", series: [
      { key: "p50", label: "Median", cls: "s2", area: true },
      { key: "p95", label: "95th percentile", cls: "s3" }] },
    { id: "chart-users", legend: "legend-users", unit: "", integer: true, series: [
      { key: "users", label: "Users", cls: "s4", area: true }] }
  ];

  function niceStep(range, count) {
    var raw = range / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / mag;
    var step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return step * mag;
  }

  var TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

  function renderCharts() {
    for (var i = 0; i < CHARTS.length; i++) drawChart(CHARTS[i], ui.points);
  }

  function legendHtml(cfg, p) {
    var h = "";
    for (var i = 0; i < cfg.series.length; i++) {
      var s = cfg.series[i];
      var v = p ? p[s.key] : null;
      h += "<span class=\"key\"><i class=\"sw " + s.cls + "\"></i>" + esc(s.label) +
        (p ? " <b>" + (v == null ? "–" : cfg.integer ? fmtInt(v) : fmtMs(v)) + "</b>" : "") + "</span>";
    }
    return h;
  }

  function drawChart(cfg, pts) {
    var svg = $(cfg.id);
    var box = svg.parentNode;
    var W = Math.max(240, Math.floor(box.clientWidth || 0));
    var H = Math.max(160, Math.floor(box.clientHeight || 0));
    if (!box.clientWidth) return; // hidden
    var narrow = W < 480;
    var m = { l: narrow ? 40 : 52, r: 12, t: 12, b: 26 };
    var iw = W - m.l - m.r, ih = H - m.t - m.b;

    var last = pts.length ? pts[pts.length - 1] : null;
    $(cfg.legend).innerHTML = legendHtml(cfg, last);

    var t1 = last ? last.t : Date.now();
    var t0 = pts.length > 1 ? pts[0].t : t1 - 60000;
    if (t1 - t0 < 60000) t0 = t1 - 60000; // show at least a minute so a fresh run does not stretch
    var ymax = 0;
    for (var i = 0; i < pts.length; i++) {
      for (var k = 0; k < cfg.series.length; k++) {
        var v = pts[i][cfg.series[k].key];
        if (v != null && v > ymax) ymax = v;
      }
    }
    var ticksWanted = ih < 150 ? 3 : 4;
    var ystep = ymax > 0 ? niceStep(ymax, ticksWanted) : 1;
    if (cfg.integer && ystep < 1) ystep = 1;
    var ytop = ymax > 0 ? Math.ceil(ymax / ystep) * ystep : ystep * ticksWanted;
    if (ytop === ymax && ymax > 0) ytop += ystep;

    function X(t) { return m.l + (t - t0) / (t1 - t0) * iw; }
    function Y(v) { return m.t + ih - v / ytop * ih; }

    var out = [];
    // horizontal grid and y labels
    for (var yv = 0; yv <= ytop + ystep / 2; yv += ystep) {
      var y = Y(yv).toFixed(1);
      out.push("<line class=\"gl" + (yv === 0 ? " base" : "") + "\" x1=\"" + m.l + "\" x2=\"" + (W - m.r) + "\" y1=\"" + y + "\" y2=\"" + y + "\"/>");
      out.push("<text class=\"ax\" x=\"" + (m.l - 6) + "\" y=\"" + y + "\" dy=\"0.32em\" text-anchor=\"end\">" + fmtAxis(+yv.toPrecision(6)) + "</text>");
    }
    // time labels
    var span = (t1 - t0) / 1000;
    var maxLabels = Math.max(2, Math.floor(iw / (narrow ? 70 : 90)));
    var step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var s = 0; s < TIME_STEPS.length; s++) { if (span / TIME_STEPS[s] <= maxLabels) { step = TIME_STEPS[s]; break; } }
    var stepMs = step * 1000;
    var withSec = step < 60;
    for (var tt = Math.ceil(t0 / stepMs) * stepMs; tt <= t1; tt += stepMs) {
      var x = X(tt);
      if (x < m.l + 14 || x > W - m.r - 14) continue;
      out.push("<line class=\"tick\" x1=\"" + x.toFixed(1) + "\" x2=\"" + x.toFixed(1) + "\" y1=\"" + (m.t + ih) + "\" y2=\"" + (m.t + ih + 4) + "\"/>");
      out.push("<text class=\"ax\" x=\"" + x.toFixed(1) + "\" y=\"" + (H - 6) + "\" text-anchor=\"middle\">" + fmtClock(tt, withSec) + "</text>");
    }
    // series
    var drawn = 0;
    for (var si = 0; si < cfg.series.length; si++) {
      var ser = cfg.series[si];
      var line = "", area = "", segStart = -1, prevX = 0, n = 0;
      for (var pi = 0; pi < pts.length; pi++) {
        var pv = pts[pi][ser.key];
        if (pv == null) {
          if (segStart >= 0 && ser.area) area += "L" + prevX + "," + Y(0).toFixed(1) + "Z";
          segStart = -1;
          continue;
        }
        var px = X(pts[pi].t).toFixed(1), py = Y(pv).toFixed(1);
        if (segStart < 0) {
          line += "M" + px + "," + py;
          if (ser.area) area += "M" + px + "," + Y(0).toFixed(1) + "L" + px + "," + py;
          segStart = pi;
        } else {
          line += "L" + px + "," + py;
          if (ser.area) area += "L" + px + "," + py;
        }
        prevX = px;
        n++;
      }
      if (segStart >= 0 && ser.area) area += "L" + prevX + "," + Y(0).toFixed(1) + "Z";
      if (ser.area && area) out.push("<path class=\"area " + ser.cls + "\" d=\"" + area + "\"/>");
      if (line) {
        out.push("<path class=\"line " + ser.cls + "\" data-series=\"" + ser.key + "\" d=\"" + line + "\"/>");
        drawn = Math.max(drawn, n);
      }
    }
    if (!pts.length) {
      out.push("<text class=\"nodata\" x=\"" + (m.l + iw / 2) + "\" y=\"" + (m.t + ih / 2) + "\" text-anchor=\"middle\">Waiting for a running test</text>");
    }
    out.push("<g class=\"hover\" visibility=\"hidden\"><line class=\"cursor\" y1=\"" + m.t + "\" y2=\"" + (m.t + ih) + "\"/></g>");
    out.push("<rect class=\"hit\" x=\"" + m.l + "\" y=\"" + m.t + "\" width=\"" + iw + "\" height=\"" + ih + "\"/>");

    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.setAttribute("data-points", String(drawn));
    svg.innerHTML = out.join("");
    svg._chart = { cfg: cfg, pts: pts, X: X, Y: Y, m: m, W: W, H: H, ih: ih };
  }

  function nearest(pts, t) {
    var lo = 0, hi = pts.length - 1;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (pts[mid].t < t) lo = mid + 1; else hi = mid;
    }
    if (lo > 0 && Math.abs(pts[lo - 1].t - t) < Math.abs(pts[lo].t - t)) lo--;
    return lo;
  }

  function onChartMove(e) {
    var svg = e.currentTarget;
    var c = svg._chart;
    if (!c || !c.pts.length) return;
    var rect = svg.getBoundingClientRect();
    var sx = (e.clientX - rect.left) * (c.W / rect.width);
    // X is linear in time: invert it between the first and last points.
    var hi = c.pts.length - 1;
    var tGuess = c.pts[0].t;
    if (hi > 0) {
      var xa = c.X(c.pts[0].t), xb = c.X(c.pts[hi].t);
      tGuess = c.pts[0].t + (sx - xa) / Math.max(1, xb - xa) * (c.pts[hi].t - c.pts[0].t);
    }
    var i = nearest(c.pts, tGuess);
    var p = c.pts[i];
    var x = c.X(p.t);
    var g = svg.querySelector("g.hover");
    var dots = "<line class=\"cursor\" x1=\"" + x.toFixed(1) + "\" x2=\"" + x.toFixed(1) + "\" y1=\"" + c.m.t + "\" y2=\"" + (c.m.t + c.ih) + "\"/>";
    var tip = "<div class=\"tip-time\">" + fmtClock(p.t, true) + "</div>";
    for (var k = 0; k < c.cfg.series.length; k++) {
      var s = c.cfg.series[k];
      var v = p[s.key];
      if (v != null) dots += "<circle class=\"dot " + s.cls + "\" cx=\"" + x.toFixed(1) + "\" cy=\"" + c.Y(v).toFixed(1) + "\" r=\"3.5\"/>";
      tip += "<div><i class=\"sw " + s.cls + "\"></i>" + esc(s.label) + " <b>" +
        (v == null ? "–" : (c.cfg.integer ? fmtInt(v) : fmtMs(v)) + esc(c.cfg.unit)) + "</b></div>";
    }
    g.innerHTML = dots;
    g.setAttribute("visibility", "visible");
    var tipEl = svg.parentNode.querySelector(".tip");
    tipEl.innerHTML = tip;
    tipEl.hidden = false;
    var px = x * rect.width / c.W;
    var left = px + 12;
    if (left + tipEl.offsetWidth > rect.width) left = px - 12 - tipEl.offsetWidth;
    tipEl.style.left = Math.max(0, left) + "px";
  }

  function onChartLeave(e) {
    var svg = e.currentTarget;
    var g = svg.querySelector("g.hover");
    if (g) g.setAttribute("visibility", "hidden");
    svg.parentNode.querySelector(".tip").hidden = true;
  }

  // ---------- tabs ----------

  var TABS = ["stats", "charts", "failures", "exceptions", "workers", "download"];

  function showTab(name, focus) {
    if (TABS.indexOf(name) < 0) name = "stats";
    ui.tab = name;
    for (var i = 0; i < TABS.length; i++) {
      var t = TABS[i];
      var btn = $("tab-" + t);
      var on = t === name;
      btn.setAttribute("aria-selected", on ? "true" : "false");
      btn.tabIndex = on ? 0 : -1;
      $("panel-" + t).hidden = !on;
      if (on && focus) btn.focus();
    }
    if (location.hash !== "#" + name && history.replaceState) history.replaceState(null, "", "#" + name);
    renderTab();
  }

  function onTabKey(e) {
    var i = TABS.indexOf(ui.tab);
    if (e.key === "ArrowRight") i = (i + 1) % TABS.length;
    else if (e.key === "ArrowLeft") i = (i + TABS.length - 1) % TABS.length;
    else if (e.key === "Home") i = 0;
    else if (e.key === "End") i = TABS.length - 1;
    else return;
    e.preventDefault();
    showTab(TABS[i], true);
  }

  // ---------- start / edit form ----------

  function setFormMode(mode) {
    ui.formMode = mode;
    var edit = mode === "edit";
    var fields = document.querySelectorAll("#start-form .new-only");
    for (var i = 0; i < fields.length; i++) fields[i].hidden = edit;
    $("start-title").textContent = edit ? "Change the running test" : "Start a new load test";
    $("start-sub").hidden = edit;
    $("btn-submit").textContent = edit ? "Update" : "Start";
    showFormError(null);
  }

  function openDialog(mode) {
    setFormMode(mode);
    if (mode === "edit" && ui.data && isNum(ui.data.user_count)) $("f-users").value = ui.data.user_count;
    $("dialog-slot").appendChild($("start-form"));
    $("btn-cancel").hidden = false;
    $("start-panel").hidden = true;
    var dlg = $("dialog");
    if (!dlg.open) {
      if (typeof dlg.showModal === "function") dlg.showModal(); else dlg.setAttribute("open", "");
    }
    $("f-users").focus();
    $("f-users").select();
  }

  function closeDialog() {
    var dlg = $("dialog");
    if (dlg.open) {
      if (typeof dlg.close === "function") dlg.close(); else dlg.removeAttribute("open");
    }
    afterDialogClosed();
  }

  function afterDialogClosed() {
    $("start-slot").appendChild($("start-form"));
    $("btn-cancel").hidden = true;
    setFormMode("new");
    if (ui.data) renderControls(ui.data.state || "");
  }

  function showFormError(msg) {
    var el = $("form-error");
    el.hidden = !msg;
    el.textContent = msg || "";
  }

  var RUN_TIME_RE = /^\s*(\d+\s*)$|^\s*(\d+\s*[hms]\s*)+$/i;

  function validate(users, rate, host, runTime, edit) {
    if (!/^\d+$/.test(users) || +users < 1) return ["f-users", "Number of users must be a whole number of at least 1."];
    if (!(rate !== "" && isFinite(+rate) && +rate > 0)) return ["f-rate", "Spawn rate must be a number above 0."];
    if (!edit && host && !/^https?:\/\/[^\s/]+/i.test(host)) return ["f-host", "Host must be a URL starting with http:// or https://."];
    if (!edit && runTime && !RUN_TIME_RE.test(runTime)) return ["f-runtime", "Run time looks like 30s, 5m, 1h30m (or seconds)."];
    return null;
  }

  function onSubmit(e) {
    e.preventDefault();
    if (ui.busy) return;
    var edit = ui.formMode === "edit";
    var users = $("f-users").value.trim();
    var rate = $("f-rate").value.trim();
    var host = $("f-host").value.trim();
    var runTime = $("f-runtime").value.trim();
    var bad = validate(users, rate, host, runTime, edit);
    var inputs = ["f-users", "f-rate", "f-host", "f-runtime"];
    for (var i = 0; i < inputs.length; i++) $(inputs[i]).removeAttribute("aria-invalid");
    if (bad) {
      $(bad[0]).setAttribute("aria-invalid", "true");
      $(bad[0]).focus();
      showFormError(bad[1]);
      return;
    }
    showFormError(null);
    var body = new URLSearchParams();
    body.set("user_count", users);
    body.set("spawn_rate", rate);
    if (!edit) {
      if (host) body.set("host", host);
      if (runTime) body.set("run_time", runTime);
    }
    setBusy(true);
    request("swarm", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(readReply).then(function (rep) {
      if (!rep.ok) { showFormError(rep.message || "The master refused the request."); return; }
      if (!edit) {
        ui.points = [];
        ui.statsHtml = "";
        ui.lastState = null;
      }
      if ($("dialog").open) closeDialog();
      poll();
    }).catch(function (err) {
      showFormError("Could not reach the master: " + (err.message || err));
    }).finally(function () { setBusy(false); });
  }

  function setBusy(b) {
    ui.busy = b;
    $("btn-submit").disabled = b;
  }

  function simpleAction(btn, url) {
    btn.disabled = true;
    request(url).then(readReply).then(function (rep) {
      if (!rep.ok) setConn("The master refused: " + (rep.message || url));
      poll();
    }).catch(function (err) {
      setConn("Could not reach the master: " + (err.message || err));
    }).finally(function () { btn.disabled = false; });
  }

  // ---------- wiring ----------

  function init() {
    $("start-form").addEventListener("submit", onSubmit);
    $("btn-cancel").addEventListener("click", closeDialog);
    $("dialog").addEventListener("close", afterDialogClosed);
    $("dialog").addEventListener("click", function (e) {
      if (e.target === $("dialog")) closeDialog(); // a click on the backdrop
    });
    $("btn-edit").addEventListener("click", function () { openDialog("edit"); });
    $("btn-new").addEventListener("click", function () { openDialog("new"); });
    $("btn-stop").addEventListener("click", function () { simpleAction($("btn-stop"), "stop"); });
    $("btn-reset").addEventListener("click", function () {
      ui.statsHtml = "";
      simpleAction($("btn-reset"), "stats/reset");
    });
    $("stats-head").addEventListener("click", onSortClick);
    var tabs = document.querySelectorAll("[role=tab]");
    for (var i = 0; i < tabs.length; i++) {
      tabs[i].addEventListener("click", function (e) { showTab(e.currentTarget.getAttribute("data-tab")); });
      tabs[i].addEventListener("keydown", onTabKey);
    }
    for (var c = 0; c < CHARTS.length; c++) {
      var svg = $(CHARTS[c].id);
      svg.addEventListener("pointermove", onChartMove);
      svg.addEventListener("pointerleave", onChartLeave);
    }
    var resizeTimer = 0;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () { if (ui.tab === "charts") renderCharts(); }, 100);
    });
    showTab((location.hash || "").replace(/^#/, "") || "stats");
    loadHistory().then(poll, poll);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
