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
    }).catch(function (err) {
      $("status").textContent = "";
      $("notice").textContent = "加载失败：" + err.message;
      $("notice").hidden = false;
    });
  }

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
  load();
})();
