/* The console's analytics page: reads /console/api/analytics for the chosen
 * range and draws it with analytics-charts.js. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var charts = [];

  function chinaToday() {
    var now = new Date(Date.now() + 8 * 3600 * 1000);
    return now.toISOString().slice(0, 10);
  }
  function shift(day, days) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }
  function query() {
    return "from=" + encodeURIComponent($("from").value) + "&to=" + encodeURIComponent($("to").value) +
      "&by=" + encodeURIComponent($("by").value);
  }

  function load() {
    $("status").textContent = "加载中…";
    $("notice").hidden = true;
    var q = query();
    history.replaceState(null, "", "?" + q);
    fetch("/console/api/analytics?" + q, { credentials: "same-origin" }).then(function (resp) {
      if (resp.status === 401) { location.href = "/console/login"; return null; }
      return resp.json().then(function (data) {
        if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
        return data;
      });
    }).then(function (figures) {
      if (!figures) return;
      KefuAnalytics.renderKpis(figures, $("kpis"));
      charts = KefuAnalytics.renderCharts(figures, $("charts"));
      KefuAnalytics.renderTables(figures, $("tables"), function (table) {
        return "/console/api/analytics.csv?table=" + encodeURIComponent(table) + "&" + q;
      });
      $("status").textContent = figures.period.from + " 至 " + figures.period.to + " · " +
        figures.totals.conversations + " 个会话";
      document.body.setAttribute("data-loaded", q);
      loadReview(q);
    }).catch(function (err) {
      $("status").textContent = "";
      $("notice").textContent = "加载失败：" + err.message;
      $("notice").hidden = false;
    });
  }

  var me = null;
  function el(tag, text) { var n = document.createElement(tag); if (text !== undefined) n.textContent = text; return n; }

  function loadReview(q) {
    if (!me || me.role !== "admin") return;
    fetch("/console/api/analytics/unanswered?" + q, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data) return;
      $("review").hidden = false;
      var body = $("review-rows");
      body.textContent = "";
      data.groups.forEach(function (group) {
        var row = el("tr");
        row.appendChild(el("td", group.example));
        row.appendChild(el("td", String(group.times)));
        var context = el("td");
        context.className = "context";
        group.context.forEach(function (turn) {
          var line = el("div", turn.text + "（" + turn.intent + "）");
          if (turn["this"]) line.className = "this";
          context.appendChild(line);
        });
        row.appendChild(context);
        var cell = el("td");
        var select = el("select");
        select.appendChild(el("option", "选择意图…")).value = "";
        data.intents.forEach(function (intent) {
          var option = el("option", intent);
          option.value = intent;
          if (intent === group.intent) option.selected = true;
          select.appendChild(option);
        });
        var assign = el("button", "归类"), ignore = el("button", "忽略");
        var state = el("span", group.ignored ? "已忽略" : (group.intent ? "已归类" : ""));
        state.className = "review-state";
        var send = function (payload, done) {
          payload.normalized_text = group.normalized_text;
          fetch("/console/api/analytics/review", {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
            body: JSON.stringify(payload)
          }).then(function (r) { state.textContent = r.ok ? done : "保存失败"; });
        };
        assign.type = ignore.type = "button";
        assign.addEventListener("click", function () {
          if (select.value) send({ intent: select.value }, "已归类");
        });
        ignore.addEventListener("click", function () { send({ ignored: true }, "已忽略"); });
        [select, assign, ignore, state].forEach(function (n) { cell.appendChild(n); });
        row.appendChild(cell);
        body.appendChild(row);
      });
    });
  }

  $("export-reviewed").addEventListener("click", function () {
    fetch("/console/api/analytics/export-reviewed", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": me ? me.csrf : "" }
    }).then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (res) {
        $("export-state").textContent = res.ok
          ? "已写出 " + res.data.examples + " 条到 " + res.data.path + "，下次 make train 时使用"
          : (res.data.error || "写出失败");
      }, function () { $("export-state").textContent = "写出失败"; });
  });

  function range(days) {
    var today = chinaToday();
    $("to").value = today;
    $("from").value = shift(today, -(days - 1));
    load();
  }

  var params = new URLSearchParams(location.search);
  $("to").value = params.get("to") || chinaToday();
  $("from").value = params.get("from") || shift($("to").value, -29);
  $("by").value = params.get("by") === "week" ? "week" : "day";
  $("apply").addEventListener("click", load);
  $("by").addEventListener("change", load);
  $("last7").addEventListener("click", function () { range(7); });
  $("last30").addEventListener("click", function () { range(30); });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  fetch("/console/api/me", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
    .then(function (who) { me = who; load(); }, function () { load(); });
})();
