// Small fetch helper shared by the pages: JSON in/out, CSRF header, clear errors.
"use strict";
const Api = {
  csrf: null,
  async call(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && Api.csrf) headers["X-CSRF-Token"] = Api.csrf;
    const resp = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401 && !url.endsWith("/api/login")) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("not logged in");
    }
    if (!resp.ok) {
      const err = new Error((data && data.error) || ("HTTP " + resp.status));
      err.status = resp.status; err.data = data;
      throw err;
    }
    return data;
  },
  async session() {
    const s = await Api.call("GET", "/api/session");
    Api.csrf = s.csrf;
    return s;
  },
  async logout() {
    try { await Api.call("POST", "/api/logout", {}); } finally { location.href = "/login"; }
  },
};
