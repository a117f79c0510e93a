// Kefu chat page: talks to Rasa's REST channel. No framework, no CDN.
(function () {
  "use strict";
  var config = window.KEFU_CONFIG || { rasaUrl: "http://localhost:5005", demoLogin: false };
  var STORE = "kefu.chat.v1";
  var BURST_GAP_MS = 5 * 60 * 1000; // a time stamp between bursts of messages
  var EMOJI = "😀😂😊😍🤔😭😡👍🙏👌🎉❤️📦💰🛒✅".match(/./gu);

  var messages = document.getElementById("messages");
  var input = document.getElementById("text");
  var sendButton = document.getElementById("send");
  var typing = document.getElementById("typing");
  var status = document.getElementById("status");
  var login = document.getElementById("login");
  var emojiPanel = document.getElementById("emoji-panel");

  // The session survives a reload: same sender id, same transcript. The
  // sender id and its session token come from the server (POST /api/session):
  // the REST channel accepts no sender id the page made up.
  var state = load();
  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE));
      if (saved && saved.history) return saved;
    } catch (e) { /* a corrupt store starts a new session */ }
    return { sender: null, sessionToken: null, history: [], token: null };
  }
  // One request at a time: the first message and the pushed-message stream
  // both ask at page load, and must end up in the same conversation.
  var pendingSession = null;
  function session() {
    if (state.sender && state.sessionToken) return Promise.resolve();
    if (pendingSession) return pendingSession;
    pendingSession = fetch("/api/session", { method: "POST" }).then(function (r) {
      if (!r.ok) throw new Error("no session: HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      state.sender = body.sender; state.sessionToken = body.session_token; save();
    }).finally(function () { pendingSession = null; });
    return pendingSession;
  }
  // A new conversation: the bot forgets who the customer was.
  function forgetSession() {
    state.sender = null; state.sessionToken = null; state.token = null; state.lastAgentMessage = 0; save();
    listen();
  }
  function save() {
    state.history = state.history.slice(-200);
    localStorage.setItem(STORE, JSON.stringify(state));
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function stamp(t) {
    var d = new Date(t), now = new Date();
    var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return d.toDateString() === now.toDateString() ? hm : (d.getMonth() + 1) + "月" + d.getDate() + "日 " + hm;
  }
  var lastTime = 0;
  function timeMarker(t) {
    if (t - lastTime > BURST_GAP_MS) messages.appendChild(el("div", "time", stamp(t)));
    lastTime = t;
  }
  function row(who) {
    var r = el("div", "row " + who);
    var avatar = el("img", "avatar");
    avatar.src = who === "user" ? "/static/user.svg" : "/static/bot.svg";
    avatar.alt = who === "user" ? "我" : "客服";
    r.appendChild(avatar);
    return r;
  }
  function scroll() { messages.scrollTop = messages.scrollHeight; }

  function render(entry) {
    timeMarker(entry.t);
    var m = entry.m;
    if (entry.who === "user") {
      var r = row("user");
      r.appendChild(el("div", "bubble", m.text));
      messages.appendChild(r);
    } else {
      if (m.text) {
        var b = row("bot");
        if (m.agent) {
          // A person answers now: the customer sees who, above the message.
          b.classList.add("agent");
          b.querySelector(".avatar").alt = "人工客服";
          messages.appendChild(el("div", "agent-name", "人工客服 " + m.agent));
        }
        var bubble = el("div", "bubble", m.text);
        if (m.image) { var img = el("img", "inline"); img.src = m.image; bubble.appendChild(img); }
        b.appendChild(bubble);
        messages.appendChild(b);
      }
      if (m.custom && (m.custom.type === "product_card" || m.custom.type === "order_card")) messages.appendChild(card(m.custom));
      if (m.buttons && m.buttons.length && entry.live !== false) messages.appendChild(buttons(m.buttons));
    }
    scroll();
  }

  function card(c) {
    var r = row("bot");
    var box = el("div", "card " + c.type.replace("_", "-"));
    var img = el("img");
    img.src = c.image || "/static/product.svg";
    img.alt = "";
    img.onerror = function () { img.src = "/static/product.svg"; };
    box.appendChild(img);
    var info = el("div", "info");
    info.appendChild(el("div", "name", c.name || c.title || ""));
    if (c.type === "order_card") {
      info.appendChild(el("div", "state", c.status + " · " + (c.order_no || "")));
      if (c.price) info.appendChild(el("div", "price", c.price));
    } else {
      info.appendChild(el("div", "price", c.price || ""));
    }
    if (c.button && c.button.payload) {
      var btn = el("button", "", c.button.title);
      btn.onclick = function () { send(c.button.payload, c.button.title); };
      info.appendChild(btn);
    }
    box.appendChild(info);
    r.appendChild(box);
    return r;
  }

  function buttons(list) {
    var wrap = el("div", "buttons");
    list.forEach(function (b) {
      var btn = el("button", "", b.title);
      btn.onclick = function () { send(b.payload, b.title); };
      wrap.appendChild(btn);
    });
    return wrap;
  }

  function add(who, m) {
    var entry = { who: who, m: m, t: Date.now() };
    state.history.push(entry);
    save();
    render(entry);
  }

  function setOnline(online) {
    status.textContent = online ? "在线" : "连接中…";
    status.classList.toggle("offline", !online);
  }

  function fetchToken() {
    if (!login.checked) { state.token = null; save(); return Promise.resolve(null); }
    if (state.token) return Promise.resolve(state.token);
    return fetch("/api/demo-token", { method: "POST" }).then(function (r) {
      if (!r.ok) throw new Error("demo login is off");
      return r.json();
    }).then(function (body) { state.token = body.token; save(); return state.token; })
      .catch(function () { login.checked = false; return null; });
  }

  var queue = Promise.resolve();
  function send(payload, shown) {
    var text = (payload || "").trim();
    if (!text) return;
    add("user", { text: shown || text });
    input.value = "";
    queue = queue.then(function () { return deliver(text, 0); });
  }

  // Retries with back-off while the server restarts; the message is kept, not lost.
  function deliver(text, attempt) {
    typing.hidden = false;
    scroll();
    return session().then(fetchToken).then(function (token) {
      var body = { sender: state.sender, message: text, metadata: { session_token: state.sessionToken } };
      if (token) body.metadata.customer_token = token;
      return fetch(config.rasaUrl.replace(/\/$/, "") + "/webhooks/rest/webhook", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      });
    }).then(function (r) {
      // A session the server no longer accepts (expired, or a new secret
      // after a restart): the retry starts a new one.
      if (r.status === 403) state.sessionToken = null;
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (replies) {
      setOnline(true);
      typing.hidden = true;
      (replies || []).forEach(function (m) { add("bot", m); });
    }).catch(function () {
      setOnline(false);
      var wait = Math.min(30000, 1000 * Math.pow(2, attempt));
      return new Promise(function (resolve) { setTimeout(resolve, wait); }).then(function () { return deliver(text, attempt + 1); });
    });
  }

  // An agent who took over the conversation (agent console) speaks through
  // this stream, as do the bot's words when the agent hands back.
  // It needs the chat's session (the stream is for its holder only), and is
  // opened again for a new conversation.
  var source = null;
  function listen() {
    if (!window.EventSource) return;
    session().then(function () {
      if (source) source.close();
      source = new EventSource("/api/chat/events?sender=" + encodeURIComponent(state.sender) +
                               "&session_token=" + encodeURIComponent(state.sessionToken) +
                               "&after=" + (state.lastAgentMessage || 0));
      source.onmessage = onPushed;
    }).catch(function () { /* the next message retries the session */ });
  }
  function onPushed(e) {
    var event = JSON.parse(e.data);
    if (event.type !== "bot") return;
    if (event.id) {
      if (event.id <= (state.lastAgentMessage || 0)) return;  // shown already
      state.lastAgentMessage = event.id;
    }
    typing.hidden = true;
    (event.messages || []).forEach(function (m) {
      add("bot", event.agent ? Object.assign({}, m, { agent: event.agent }) : m);
    });
  }

  function ping() {
    fetch(config.rasaUrl.replace(/\/$/, "") + "/", { cache: "no-store" })
      .then(function (r) { setOnline(r.ok); }).catch(function () { setOnline(false); });
  }

  sendButton.onclick = function () { send(input.value); };
  input.addEventListener("keydown", function (e) { if (e.key === "Enter" && !e.isComposing) send(input.value); });
  document.getElementById("emoji").onclick = function () { emojiPanel.hidden = !emojiPanel.hidden; };
  EMOJI.forEach(function (e) {
    var b = el("button", "", e);
    b.onclick = function () { input.value += e; input.focus(); };
    emojiPanel.appendChild(b);
  });
  login.hidden = !config.demoLogin;
  login.parentElement.hidden = !config.demoLogin;
  login.checked = !!state.token;
  // Unticking 已登录 ends the logged-in conversation: the next message
  // starts a new one, in which the bot knows nothing of the customer.
  login.onchange = function () { if (login.checked) { state.token = null; save(); } else { forgetSession(); } };

  state.history.forEach(function (entry, i) {
    render({ who: entry.who, m: entry.m, t: entry.t, live: i === state.history.length - 1 });
  });
  if (!state.history.length) queue = queue.then(function () { return deliver("/greet", 0); });
  listen();
  ping();
  setInterval(ping, 10000);
  window.kefuChat = { state: state, send: send };
})();
