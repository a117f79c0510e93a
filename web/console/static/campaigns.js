// The campaign page (营销活动): admins pick a promotion and an audience rule,
// preview the count and the message, send now or at a time, cancel, and
// follow sent / delivered / skipped (why) / clicked. No framework, no CDN.
(function () {
  "use strict";
  var me = null;
  var STATUS = { scheduled: "待发送", expanding: "准备中", sending: "发送中", done: "已完成", cancelled: "已取消" };
  var REASON = {
    opted_out: "已退订", quiet_hours: "免打扰时段", wechat_window_closed: "超过微信48小时窗口",
    wechat_window_full: "微信窗口内已满5条", wechat_never_wrote: "未在公众号发过消息", wechat_unfollowed: "已取消关注",
    campaign_cancelled: "活动已取消", consent_withdrawn: "已退订", gave_up: "多次失败"
  };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET") { headers["Content-Type"] = "application/json"; headers["X-CSRF-Token"] = me ? me.csrf : ""; }
    return fetch(path, { method: method, headers: headers, credentials: "same-origin",
                         body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        if (r.status === 401) { location.href = "/console/login"; throw new Error("请先登录"); }
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
          return data;
        });
      });
  }
  function notice(text) { $("notice").textContent = text || ""; $("notice").hidden = !text; }
  function china(iso) {
    if (!iso) return "";
    var d = new Date(new Date(iso).getTime() + 8 * 3600 * 1000);
    return d.toISOString().slice(0, 16).replace("T", " ");
  }
  function form() {
    return {
      promotion_id: $("promotion").value,
      audience: { tag: $("tag").value, category: $("category").value,
                  days: $("category").value ? Number($("days").value || 30) : null, unpaid: $("unpaid").checked },
      message: $("message").value,
      send_at: $("send-at").value || null
    };
  }
  function audienceText(a) {
    var parts = ["已订阅"];
    if (a.tag) parts.push("标签 " + a.tag);
    if (a.category) parts.push("近" + (a.days || 30) + "天买过" + a.category);
    if (a.unpaid) parts.push("有待付款订单");
    return parts.join("，");
  }
  function renderMessage(box, messages) {
    while (box.firstChild) box.removeChild(box.firstChild);
    (messages || []).forEach(function (m) {
      box.appendChild(el("div", "", m.text));
      (m.buttons || []).forEach(function (b) { box.appendChild(el("span", "btn", b.title)); });
    });
  }

  function load() {
    return api("GET", "/console/api/campaigns").then(function (data) {
      var select = $("promotion"), keep = select.value;
      while (select.firstChild) select.removeChild(select.firstChild);
      data.promotions.forEach(function (p) {
        var option = el("option", "", p.title + (p.active ? "" : "（未开始）"));
        option.value = p.id;
        select.appendChild(option);
      });
      if (keep) select.value = keep;
      $("quiet").textContent = data.quiet_hours ? data.quiet_hours + " 不发送（到时再发）" : "未设免打扰时段";
      var categories = $("category");
      if (categories.options.length === 1) {
        data.categories.forEach(function (c) { var o = el("option", "", c); o.value = c; categories.appendChild(o); });
      }
      var rows = $("rows");
      while (rows.firstChild) rows.removeChild(rows.firstChild);
      data.campaigns.forEach(function (c) {
        var tr = el("tr");
        var skipped = c.stats.skipped, total = 0, why = [];
        Object.keys(skipped).forEach(function (k) { total += skipped[k]; why.push((REASON[k] || k) + " " + skipped[k]); });
        [c.id, c.promotion, audienceText(c.audience), STATUS[c.status] || c.status, china(c.send_at),
         c.audience_count === null ? "—" : c.audience_count, c.stats.sent, c.stats.delivered].forEach(function (v) {
          tr.appendChild(el("td", "", v));
        });
        var td = el("td", "", String(total));
        if (why.length) td.appendChild(el("div", "reasons", why.join("；")));
        tr.appendChild(td);
        tr.appendChild(el("td", "", c.stats.clicked));
        tr.appendChild(el("td", "", c.stats.converted));
        var actions = el("td");
        if (c.status === "scheduled" || c.status === "sending") {
          var cancel = el("button", "", "取消");
          cancel.type = "button";
          cancel.onclick = function () {
            api("POST", "/console/api/campaigns/" + c.id + "/cancel").then(load).catch(function (e) { notice(e.message); });
          };
          actions.appendChild(cancel);
        }
        tr.appendChild(actions);
        rows.appendChild(tr);
      });
      $("status").textContent = "更新于 " + new Date().toLocaleTimeString();
    }).catch(function (e) { notice(e.message); });
  }

  $("preview").onclick = function () {
    notice("");
    api("POST", "/console/api/campaigns/preview", form()).then(function (data) {
      $("preview-count").textContent = data.count;
      renderMessage($("preview-message"), data.messages);
      $("preview-box").hidden = false;
    }).catch(function (e) { notice(e.message); });
  };
  $("send").onclick = function () {
    notice("");
    var data = form();
    if (!window.confirm(data.send_at ? "确认在 " + data.send_at.replace("T", " ") + " 发送？" : "确认立即发送？")) return;
    api("POST", "/console/api/campaigns", data).then(function () {
      $("message").value = ""; $("preview-box").hidden = true; return load();
    }).catch(function (e) { notice(e.message); });
  };

  api("GET", "/console/api/me").then(function (data) { me = data; return load(); })
    .catch(function (e) { notice(e.message); });
  setInterval(load, 5000);
})();
