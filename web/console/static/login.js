// Shows why the last login failed (the server redirects with ?error=...).
(function () {
  "use strict";
  var reasons = { wrong: "账号或密码错误", locked: "密码错误次数过多，账号已暂时锁定，请 15 分钟后再试", csrf: "页面已过期，请重新登录" };
  var error = new URLSearchParams(location.search).get("error");
  var box = document.getElementById("login-error");
  if (error && reasons[error]) { box.textContent = reasons[error]; box.hidden = false; }
})();
