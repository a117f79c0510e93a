/* Draws the analytics figures (kefu.analytics.figures) as ECharts charts and
 * tables. Shared by the console's dashboard and the `kefu report` HTML file
 * (inlined there). Customer text is only ever set as textContent. */
(function (global) {
  "use strict";

  var CHANNELS = { web: "网页", wechat: "微信" };
  var REASONS = {
    customer_request: "顾客要求", two_fallbacks: "连续两次未听懂", complaint: "投诉",
    verification_locked: "验证锁定"
  };
  var LOOKUPS = {
    verify_phone_tail: "验证手机尾号", find_order: "按订单号查询", find_order_by_tracking_no: "按运单号查询",
    lock_order_lookups: "锁定查询"
  };
  // The outcomes kefu.shop.service writes (Verification, find_order).
  var OUTCOMES = { verified: "验证通过", wrong_tail: "尾号错误", locked: "已锁定", found: "找到", not_found: "未找到",
                   other_customer: "他人订单" };
  var KINDS = { "return": "退货", exchange: "换货", refund: "退款", repair: "维修", complaint: "投诉" };
  var STATUSES = { open: "待处理", approved: "已受理", rejected: "已拒绝", in_progress: "处理中", closed: "已关闭" };
  var WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

  // Every table: its Chinese title and columns [key, heading, label map].
  var TABLES = [
    ["conversations_by_bucket", "会话量（按日/周、渠道）", [["bucket", "日期"], ["channel", "渠道", CHANNELS],
      ["conversations", "会话数"], ["user_messages", "顾客消息数"], ["customers", "顾客数"],
      ["bot_settled", "机器人独立接待"], ["handed_off", "转人工"], ["fallbacks", "未听懂消息"]]],
    ["handoff_reasons", "转人工原因", [["reason", "原因", REASONS], ["handoffs", "次数"]]],
    ["not_understood", "未听懂的消息（归并后）", [["example", "消息"], ["times", "次数"], ["customers", "顾客数"]]],
    ["intents", "意图分布", [["intent", "意图"], ["messages", "消息数"]]],
    ["products", "咨询最多的商品", [["product", "商品"], ["messages", "消息数"]]],
    ["categories", "咨询最多的类目", [["category", "类目"], ["messages", "消息数"]]],
    ["order_lookups", "订单查询及结果", [["action", "操作", LOOKUPS], ["outcome", "结果", OUTCOMES], ["times", "次数"]]],
    ["tickets", "售后工单（类型 × 状态）", [["kind", "类型", KINDS], ["status", "状态", STATUSES], ["tickets", "工单数"]]],
    ["ticket_reasons", "售后工单原因", [["kind", "类型", KINDS], ["reason", "原因"], ["tickets", "工单数"]]],
    ["refusals", "被规则拒绝的请求", [["action", "操作"], ["rule", "规则"], ["times", "次数"]]],
    ["csat_distribution", "满意度分布", [["score", "评分"], ["ratings", "评价数"]]],
    ["csat_by_agent", "客服满意度", [["agent", "客服"], ["ratings", "评价数"], ["average", "平均分"]]],
    ["busy_hours", "繁忙时段", [["weekday", "星期", WEEKDAYS], ["hour", "小时"], ["user_messages", "顾客消息数"]]]
  ];

  function pct(value) { return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%"; }
  function num(value, digits) {
    return value === null || value === undefined ? "—" : (digits ? Number(value).toFixed(digits) : String(value));
  }
  function label(map, value) { return map && map[value] !== undefined ? map[value] : String(value); }

  function kpis(totals) {
    return [
      ["会话数", num(totals.conversations)], ["顾客消息数", num(totals.user_messages)],
      ["顾客数", num(totals.customers)], ["独立接待率", pct(totals.bot_settled_share)],
      ["转人工率", pct(totals.handoff_rate)], ["接入等待中位数", totals.median_wait_seconds === null ? "—"
        : num(totals.median_wait_seconds, 0) + " 秒"],
      ["未听懂率", pct(totals.fallback_rate)], ["满意度均分", num(totals.csat_average, 2)],
      ["参评率", pct(totals.rating_share)], ["机器人响应 p50", totals.response_p50_seconds === null ? "—"
        : num(totals.response_p50_seconds * 1000, 0) + " ms"],
      ["机器人响应 p95", totals.response_p95_seconds === null ? "—"
        : num(totals.response_p95_seconds * 1000, 0) + " ms"]
    ];
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function csvOf(rows, columns) {
    var quote = function (v) { v = v === null || v === undefined ? "" : String(v); return '"' + v.replace(/"/g, '""') + '"'; };
    var lines = [columns.map(function (c) { return quote(c[0]); }).join(",")];
    rows.forEach(function (r) { lines.push(columns.map(function (c) { return quote(r[c[0]]); }).join(",")); });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }

  function renderTables(figures, root, csvHref) {
    root.textContent = "";
    TABLES.forEach(function (spec) {
      var name = spec[0], columns = spec[2], rows = figures[name] || [];
      var box = el("section", "table-box");
      box.id = "table-" + name;
      var head = el("div", "table-head");
      head.appendChild(el("h3", null, spec[1]));
      var link = el("a", "csv-link", "导出 CSV");
      if (csvHref) {
        link.href = csvHref(name);
      } else {
        link.href = "data:text/csv;charset=utf-8," + encodeURIComponent(csvOf(rows, columns));
      }
      link.setAttribute("download", name + ".csv");
      head.appendChild(link);
      box.appendChild(head);
      var table = el("table", "data");
      var tr = el("tr");
      columns.forEach(function (c) { tr.appendChild(el("th", null, c[1])); });
      table.appendChild(el("thead")).appendChild(tr);
      var body = el("tbody");
      if (!rows.length) {
        var empty = el("td", "empty", "暂无数据");
        empty.colSpan = columns.length;
        body.appendChild(el("tr")).appendChild(empty);
      }
      rows.forEach(function (r) {
        var row = el("tr");
        columns.forEach(function (c) { row.appendChild(el("td", null, label(c[2], r[c[0]]))); });
        body.appendChild(row);
      });
      table.appendChild(body);
      box.appendChild(table);
      root.appendChild(box);
    });
  }

  function renderKpis(figures, root) {
    root.textContent = "";
    kpis(figures.totals).forEach(function (k) {
      var card = el("div", "kpi");
      card.appendChild(el("div", "kpi-value", k[1]));
      card.appendChild(el("div", "kpi-name", k[0]));
      root.appendChild(card);
    });
  }

  function chart(root, id, title, option) {
    var box = document.getElementById(id);
    if (!box) {
      box = el("div", "chart");
      box.id = id;
      root.appendChild(box);
    }
    var instance = global.echarts.getInstanceByDom(box) || global.echarts.init(box, null, { renderer: "canvas" });
    option.title = { text: title, left: "center", textStyle: { fontSize: 14 } };
    option.animation = false;
    instance.setOption(option, true);
    return instance;
  }

  function renderCharts(figures, root) {
    var buckets = [], byKey = {};
    figures.conversations_by_bucket.forEach(function (r) {
      if (buckets.indexOf(r.bucket) < 0) buckets.push(r.bucket);
      byKey[r.bucket + "|" + r.channel] = r;
    });
    var series = function (channel, field) {
      return buckets.map(function (b) { var r = byKey[b + "|" + channel]; return r ? r[field] : 0; });
    };
    var sum = function (field) {
      return buckets.map(function (b) {
        return ["web", "wechat"].reduce(function (s, c) { var r = byKey[b + "|" + c]; return s + (r ? r[field] : 0); }, 0);
      });
    };
    var settled = sum("bot_settled"), handed = sum("handed_off"), convs = sum("conversations");
    var ratio = function (part) {
      return part.map(function (v, i) { return convs[i] ? +(v / convs[i] * 100).toFixed(1) : null; });
    };
    var charts = [];
    charts.push(chart(root, "chart-volume", "会话量与消息量", {
      tooltip: { trigger: "axis" }, legend: { top: 24 }, grid: { top: 60, left: 50, right: 50, bottom: 30 },
      xAxis: { type: "category", data: buckets },
      yAxis: [{ type: "value", name: "会话" }, { type: "value", name: "消息" }],
      series: [
        { name: "会话（网页）", type: "bar", stack: "c", data: series("web", "conversations") },
        { name: "会话（微信）", type: "bar", stack: "c", data: series("wechat", "conversations") },
        { name: "顾客消息", type: "line", yAxisIndex: 1, data: sum("user_messages") }
      ]
    }));
    charts.push(chart(root, "chart-rates", "独立接待率与转人工率（%）", {
      tooltip: { trigger: "axis" }, legend: { top: 24 }, grid: { top: 60, left: 50, right: 20, bottom: 30 },
      xAxis: { type: "category", data: buckets }, yAxis: { type: "value", max: 100 },
      series: [{ name: "独立接待率", type: "line", data: ratio(settled) },
               { name: "转人工率", type: "line", data: ratio(handed) }]
    }));
    charts.push(chart(root, "chart-handoffs", "转人工原因", {
      tooltip: { trigger: "item" },
      series: [{ type: "pie", radius: ["35%", "65%"], top: 20,
                 data: figures.handoff_reasons.map(function (r) { return { name: label(REASONS, r.reason), value: r.handoffs }; }) }]
    }));
    var intents = figures.intents.slice(0, 15).reverse();
    charts.push(chart(root, "chart-intents", "意图分布（前 15）", {
      tooltip: {}, grid: { top: 40, left: 140, right: 20, bottom: 20 },
      xAxis: { type: "value" }, yAxis: { type: "category", data: intents.map(function (r) { return r.intent; }) },
      series: [{ type: "bar", data: intents.map(function (r) { return r.messages; }) }]
    }));
    var products = figures.products.slice(0, 10).reverse();
    charts.push(chart(root, "chart-products", "咨询最多的商品", {
      tooltip: {}, grid: { top: 40, left: 140, right: 20, bottom: 20 },
      xAxis: { type: "value" }, yAxis: { type: "category", data: products.map(function (r) { return r.product; }) },
      series: [{ type: "bar", data: products.map(function (r) { return r.messages; }) }]
    }));
    charts.push(chart(root, "chart-csat", "满意度分布（1–5 分）", {
      tooltip: {}, grid: { top: 40, left: 40, right: 20, bottom: 30 },
      xAxis: { type: "category", data: figures.csat_distribution.map(function (r) { return r.score + " 分"; }) },
      yAxis: { type: "value" },
      series: [{ type: "bar", data: figures.csat_distribution.map(function (r) { return r.ratings; }) }]
    }));
    var heat = figures.busy_hours.map(function (r) { return [r.hour, r.weekday, r.user_messages]; });
    var peak = heat.reduce(function (m, r) { return Math.max(m, r[2]); }, 1);
    var hours = []; for (var h = 0; h < 24; h++) hours.push(h + "时");
    charts.push(chart(root, "chart-heat", "繁忙时段（星期 × 小时，顾客消息数）", {
      tooltip: {}, grid: { top: 40, left: 50, right: 20, bottom: 60 },
      xAxis: { type: "category", data: hours }, yAxis: { type: "category", data: WEEKDAYS, inverse: true },
      visualMap: { min: 0, max: peak, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
      series: [{ type: "heatmap", data: heat }]
    }));
    var kinds = [], statuses = [];
    figures.tickets.forEach(function (r) {
      if (kinds.indexOf(r.kind) < 0) kinds.push(r.kind);
      if (statuses.indexOf(r.status) < 0) statuses.push(r.status);
    });
    charts.push(chart(root, "chart-tickets", "售后工单（类型 × 状态）", {
      tooltip: { trigger: "axis" }, legend: { top: 24 }, grid: { top: 60, left: 40, right: 20, bottom: 30 },
      xAxis: { type: "category", data: kinds.map(function (k) { return label(KINDS, k); }) }, yAxis: { type: "value" },
      series: statuses.map(function (s) {
        return { name: label(STATUSES, s), type: "bar", stack: "t", data: kinds.map(function (k) {
          var hit = figures.tickets.filter(function (r) { return r.kind === k && r.status === s; })[0];
          return hit ? hit.tickets : 0;
        }) };
      })
    }));
    var lookups = figures.order_lookups;
    charts.push(chart(root, "chart-lookups", "订单查询结果", {
      tooltip: {}, grid: { top: 40, left: 170, right: 20, bottom: 20 }, xAxis: { type: "value" },
      yAxis: { type: "category", data: lookups.map(function (r) { return label(LOOKUPS, r.action) + "·" + label(OUTCOMES, r.outcome); }) },
      series: [{ type: "bar", data: lookups.map(function (r) { return r.times; }) }]
    }));
    return charts;
  }

  global.KefuAnalytics = { renderKpis: renderKpis, renderCharts: renderCharts, renderTables: renderTables,
                           TABLES: TABLES };
})(window);
