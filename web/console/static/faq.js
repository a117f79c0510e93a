/* The admin's FAQ answers page: one editable answer per utter_faq/* response
 * of the domain; 恢复默认 goes back to the domain's text. Texts are put on the
 * page with textContent / value, never as HTML. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var me = null;
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
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

  function render(items) {
    var list = $("faq-list");
    list.textContent = "";
    items.forEach(function (item) {
      var box = el("div", "faq-item");
      box.setAttribute("data-key", item.key);
      var head = el("div", "faq-head");
      head.appendChild(el("h3", null, item.label));
      head.appendChild(el("code", null, "utter_faq/" + item.key));
      head.appendChild(el("span", "faq-state", item.edited ? "已修改（" + String(item.updated_at).slice(0, 16) + " UTC）" : "默认答案"));
      box.appendChild(head);
      var text = el("textarea");
      text.rows = 5;
      text.maxLength = 1000;
      text.value = item.text;
      box.appendChild(text);
      var save = el("button", null, "保存"), reset = el("button", null, "恢复默认");
      save.type = reset.type = "button";
      reset.disabled = !item.edited;
      var state = el("span", "review-state");
      save.addEventListener("click", function () {
        api("POST", "/console/api/faq", { key: item.key, text: text.value })
          .then(function () { state.textContent = "已保存"; return load(); })
          .catch(function (e) { state.textContent = e.message; });
      });
      reset.addEventListener("click", function () {
        api("POST", "/console/api/faq/reset", { key: item.key })
          .then(function () { state.textContent = "已恢复默认"; return load(); })
          .catch(function (e) { state.textContent = e.message; });
      });
      var bar = el("div", "faq-actions");
      [save, reset, state].forEach(function (n) { bar.appendChild(n); });
      box.appendChild(bar);
      var fallback = el("details");
      fallback.appendChild(el("summary", null, "默认答案（domain）"));
      fallback.appendChild(el("p", null, item["default"]));
      box.appendChild(fallback);
      list.appendChild(box);
    });
    document.body.setAttribute("data-loaded", "1");
  }
  function load() {
    return api("GET", "/console/api/faq").then(function (data) { render(data.items); })
      .catch(function (e) { notice("加载失败：" + e.message); });
  }
  api("GET", "/console/api/me").then(function (who) { me = who; return load(); })
    .catch(function (e) { notice(e.message); });
})();
