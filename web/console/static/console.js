// Kefu agent console (客服工作台). No framework, no CDN. Every text a customer
// typed is put on the page with textContent, never as HTML.
(function () {
  "use strict";
  var me = null;
  var selected = null;      // hand-off id shown in the middle
  var current = null;       // its last loaded conversation
  var canned = [];
  var unseen = 0;
  var baseTitle = document.title;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET") { headers["Content-Type"] = "application/json"; headers["X-CSRF-Token"] = me ? me.csrf : ""; }
    return fetch(path, { method: method, headers: headers, credentials: "same-origin",
                         body: body ? JSON.stringify(body) : undefined })
      .catch(function () { throw new Error("网络连接失败，请稍后重试"); })
      .then(function (r) {
        if (r.status === 401) { location.href = "/console/login"; throw new Error("请先登录"); }
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new Error(data.error || ("请求失败（" + r.status + "）"));
          return data;
        });
      });
  }

  function notice(text) {
    var box = $("notice");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function waited(seconds) {
    if (seconds < 60) return seconds + "秒";
    if (seconds < 3600) return Math.floor(seconds / 60) + "分钟";
    return Math.floor(seconds / 3600) + "小时" + Math.floor((seconds % 3600) / 60) + "分";
  }
  var CHANNEL = { web: "网页", wechat: "微信" };

  // --- queue ---------------------------------------------------------------
  function loadQueue() {
    return api("GET", "/console/api/queue").then(function (data) {
      var waiting = $("waiting"), tasks = $("tasks"), taken = $("taken");
      clear(waiting); clear(tasks); clear(taken);
      var counts = { waiting: 0, tasks: 0 };
      data.items.forEach(function (item) {
        var li = el("li", "item" + (item.id === selected ? " active" : ""));
        li.dataset.id = item.id;
        var top = el("div", "item-top");
        top.appendChild(el("span", "who", item.customer));
        top.appendChild(el("span", "channel", CHANNEL[item.channel] || item.channel));
        li.appendChild(top);
        var meta = el("div", "item-meta");
        meta.appendChild(el("span", "reason", item.reason_zh));
        meta.appendChild(el("span", "waited", item.status === "waiting" ? "已等待 " + waited(item.waited_seconds)
                                                                      : "接待人：" + (item.claimed_by_name || "")));
        li.appendChild(meta);
        if (item.last_messages.length) li.appendChild(el("div", "last", item.last_messages.join(" / ")));
        if (item.tags.length) li.appendChild(el("div", "item-tags", item.tags.map(function (t) { return "#" + t; }).join(" ")));
        li.onclick = function () { select(item.id); };
        if (item.status === "taken") taken.appendChild(li);
        else if (item.left_message) { tasks.appendChild(li); counts.tasks++; }
        else { waiting.appendChild(li); counts.waiting++; }
      });
      $("waiting-count").textContent = counts.waiting;
      $("task-count").textContent = counts.tasks;
    }).catch(function (e) { notice(e.message); });
  }

  function badge(newOnes) {
    if (!newOnes || !newOnes.length || document.hasFocus()) return;
    unseen += newOnes.length;
    document.title = "(" + unseen + ") 新的转人工 · " + baseTitle;
    beep();
  }
  window.addEventListener("focus", function () { unseen = 0; document.title = baseTitle; });
  function beep() {
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator();
      osc.frequency.value = 880;
      osc.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* no sound available: the title badge still shows */ }
  }

  // --- one conversation ------------------------------------------------------
  function select(id) {
    selected = id;
    notice("");
    Array.prototype.forEach.call(document.querySelectorAll(".queue .item"), function (li) {
      li.classList.toggle("active", Number(li.dataset.id) === id);
    });
    $("orders").innerHTML = "";
    return loadConversation();
  }

  var STATE = { waiting: "等待接入", taken: "服务中", closed: "已结束" };
  function loadConversation() {
    if (selected === null) return Promise.resolve();
    var id = selected;
    return api("GET", "/console/api/handoffs/" + id).then(function (data) {
      if (id !== selected) return;
      current = data;
      $("chat-empty").hidden = true;
      $("chat-box").hidden = false;
      var h = data.handoff;
      $("chat-title").textContent = (h.customer || h.conversation_id) + (h.reason_zh ? " · " + h.reason_zh : "");
      var state = STATE[h.status] || h.status;
      if (h.status === "taken") state += "（" + (data.mine ? "我" : h.claimed_by_name) + "）";
      if (h.left_message) state += " · 留言";
      $("chat-state").textContent = state + (data.paused ? " · 机器人已暂停" : "");
      $("claim").hidden = h.status !== "waiting";
      $("handback").hidden = !data.mine;
      $("reply").disabled = !data.mine;
      $("send").disabled = !data.mine;
      renderTranscript(data.transcript);
      if (h.left_message && data.left_messages && data.left_messages.length) notice("顾客留言：" + data.left_messages.join(" / "));
      renderCustomer(data.customer);
    }).catch(function (e) { notice(e.message); });
  }

  function renderTranscript(lines) {
    var box = $("transcript");
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    clear(box);
    lines.forEach(function (line) {
      var row = el("div", "line from-" + line.who);
      var who = line.who === "customer" ? "顾客" : line.who === "agent" ? "客服 " + (line.agent || "") : "机器人";
      row.appendChild(el("div", "line-who", who));
      row.appendChild(el("div", "bubble", line.text));
      box.appendChild(row);
    });
    if (atBottom || lines.length) box.scrollTop = box.scrollHeight;
  }

  function listInto(id, items, fmt) {
    var ul = $(id);
    clear(ul);
    if (!items || !items.length) { ul.appendChild(el("li", "none", "暂无")); return; }
    items.forEach(function (item) { ul.appendChild(el("li", "", fmt(item))); });
  }

  function renderCustomer(c) {
    $("customer").hidden = false;
    var profile = $("profile");
    clear(profile);
    if (c.verified && c.profile) {
      profile.appendChild(el("div", "field", "姓名：" + c.profile.name));
      profile.appendChild(el("div", "field", "手机：" + c.profile.phone));
      profile.appendChild(el("div", "field", "微信绑定：" + (c.profile.wechat ? "是" : "否")));
    } else {
      profile.appendChild(el("div", "field muted", "未验证身份的访客：只显示顾客在对话中说过的内容。"));
    }
    $("orders-box").hidden = !c.verified;
    $("tickets-box").hidden = !c.verified;
    if (c.verified) listInto("tickets", c.tickets, function (t) { return t.ticket_no + " " + t.kind + " · " + t.status + " · " + t.created_at; });
    var tags = $("tags");
    clear(tags);
    (c.tags || []).forEach(function (t) { tags.appendChild(el("span", "tag", t)); });
    listInto("notes", c.notes, function (n) { return n.text + " —— " + n.agent + " " + n.created_at; });
    listInto("history", c.handoffs, function (h) { return h.created_at + " " + (STATE[h.status] || h.status) + (h.agent ? " · " + h.agent : ""); });
    listInto("ratings", c.ratings, function (r) { return r.created_at + " " + r.score + "星" + (r.agent ? " · " + r.agent : ""); });
  }

  $("show-orders").onclick = function () {
    api("GET", "/console/api/handoffs/" + selected + "/orders").then(function (data) {
      listInto("orders", data.orders, function (o) {
        return o.order_no + " · " + o.status + " · " + o.total + "\n" + o.items + (o.logistics ? "\n物流：" + o.logistics : "");
      });
    }).catch(function (e) { notice(e.message); });
  };

  $("claim").onclick = function () {
    api("POST", "/console/api/handoffs/" + selected + "/claim").then(function () {
      notice("");
      return Promise.all([loadQueue(), loadConversation()]);
    }).then(function () { $("reply").focus(); }).catch(function (e) { notice(e.message); loadConversation(); });
  };
  $("handback").onclick = function () {
    api("POST", "/console/api/handoffs/" + selected + "/handback").then(function () {
      notice("已交还机器人，顾客将收到评价邀请。");
      return Promise.all([loadQueue(), loadConversation()]);
    }).catch(function (e) { notice(e.message); });
  };

  function send() {
    var text = $("reply").value.trim();
    if (!text || selected === null) return;
    $("send").disabled = true;
    api("POST", "/console/api/handoffs/" + selected + "/reply", { text: text }).then(function () {
      $("reply").value = "";
      hideMenu();
      return loadConversation();
    }).catch(function (e) { notice(e.message); }).then(function () { $("send").disabled = !(current && current.mine); });
  }
  $("send").onclick = send;
  $("reply").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      var first = $("canned-menu").hidden ? null : $("canned-menu").querySelector("li");
      e.preventDefault();
      if (first) { first.click(); return; }
      send();
    } else if (e.key === "Escape") { hideMenu(); }
  });
  $("reply").addEventListener("input", function () {
    var value = $("reply").value;
    if (value.charAt(0) !== "/") { hideMenu(); return; }
    var word = value.slice(1).toLowerCase();
    var menu = $("canned-menu");
    clear(menu);
    // "/" alone lists them all; "/稍" or "/sd" first those whose shortcut starts so, then those whose text has it.
    function starts(c) { return c.shortcut.toLowerCase().indexOf(word) === 0; }
    canned.filter(starts).concat(canned.filter(function (c) {
      return word && !starts(c) && c.text.indexOf(word) >= 0;
    })).forEach(function (c) {
      var li = el("li", "", "/" + c.shortcut + "  " + c.text);
      li.onclick = function () { $("reply").value = c.text; hideMenu(); $("reply").focus(); };
      menu.appendChild(li);
    });
    menu.hidden = !menu.firstChild;
  });
  function hideMenu() { $("canned-menu").hidden = true; }

  $("tag-form").onsubmit = function (e) {
    e.preventDefault();
    var tag = $("tag-input").value.trim();
    if (!tag) return;
    api("POST", "/console/api/handoffs/" + selected + "/tags", { tag: tag })
      .then(function () { $("tag-input").value = ""; return loadConversation(); }).catch(function (err) { notice(err.message); });
  };
  $("note-form").onsubmit = function (e) {
    e.preventDefault();
    var text = $("note-input").value.trim();
    if (!text) return;
    api("POST", "/console/api/handoffs/" + selected + "/notes", { text: text })
      .then(function () { $("note-input").value = ""; return loadConversation(); }).catch(function (err) { notice(err.message); });
  };

  // --- canned replies ------------------------------------------------------
  function loadCanned() {
    return api("GET", "/console/api/canned").then(function (data) {
      canned = data.items;
      var bar = $("canned-bar");
      clear(bar);
      canned.forEach(function (c) {
        var b = el("button", "chip", c.shortcut);
        b.type = "button";
        b.title = c.text;
        b.onclick = function () {
          var box = $("reply");
          box.value = box.value ? box.value + c.text : c.text;
          box.focus();
        };
        bar.appendChild(b);
      });
      var list = $("canned-list");
      clear(list);
      canned.forEach(function (c) {
        var li = el("li", "", "/" + c.shortcut + "：" + c.text + " ");
        var del = el("button", "", "删除");
        del.type = "button";
        del.onclick = function () { api("POST", "/console/api/canned/" + c.id + "/delete").then(loadCanned).catch(function (e) { alert(e.message); }); };
        li.appendChild(del);
        list.appendChild(li);
      });
    });
  }
  $("manage-canned").onclick = function () { $("canned-admin").hidden = false; };
  $("canned-close").onclick = function () { $("canned-admin").hidden = true; };
  $("canned-form").onsubmit = function (e) {
    e.preventDefault();
    api("POST", "/console/api/canned", { shortcut: $("canned-shortcut").value, text: $("canned-text").value })
      .then(function () { $("canned-shortcut").value = ""; $("canned-text").value = ""; return loadCanned(); })
      .catch(function (err) { alert(err.message); });
  };

  $("logout").onclick = function () {
    api("POST", "/console/logout").then(function () { location.href = "/console/login"; });
  };

  // --- live updates --------------------------------------------------------
  function listen() {
    var source = new EventSource("/console/api/events");
    source.onopen = function () { $("live").textContent = "实时"; $("live").className = "live on"; };
    source.onerror = function () { $("live").textContent = "重新连接中…"; $("live").className = "live off"; };
    source.onmessage = function (e) {
      var event = JSON.parse(e.data);
      if (event.type === "queue") { loadQueue(); badge(event["new"]); }
      else if (event.type === "messages" && current && current.handoff.conversation_id === event.conversation_id) loadConversation();
    };
  }
  // Waited times tick on even without events.
  setInterval(loadQueue, 30000);

  api("GET", "/console/api/me").then(function (data) {
    me = data;
    $("me").textContent = data.name + "（" + (data.role === "admin" ? "管理员" : "客服") + "）";
    $("manage-canned").hidden = data.role !== "admin";
    $("campaigns-link").hidden = data.role !== "admin";
    $("faq-link").hidden = data.role !== "admin";
    listen();
    return Promise.all([loadQueue(), loadCanned()]);
  }).catch(function (e) { notice(e.message); });
  window.kefuConsole = { select: select, reload: loadConversation };
})();
