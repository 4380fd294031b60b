// node --test: the shared API client and upload module (server/static/api.js, upload.js),
// against a stand-in fetch, XMLHttpRequest and location.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { ApiError, apiError, createApi, parseJson, safeNext, signInUrl } from "../../server/static/api.js";
import { BROKE_OFF, sentFraction, uploadFile, uploadProblem } from "../../server/static/upload.js";

// A stand-in server: answers by "METHOD url", records every request.
function fakeServer(answers) {
  const seen = [];
  globalThis.location = { pathname: "/records", search: "?patient=P-1", href: "/records?patient=P-1" };
  globalThis.fetch = async (url, init = {}) => {
    seen.push({ url, method: init.method || "GET", headers: init.headers || {}, body: init.body });
    const [status, data] = answers[`${init.method || "GET"} ${url}`] || [404, { error: "no such page" }];
    return {
      status, ok: status >= 200 && status < 300,
      json: async () => { if (data === undefined) throw new SyntaxError("not JSON"); return data; },
    };
  };
  return seen;
}

test("errors carry the server's words, its code and the status", () => {
  const e = apiError(409, { error: "already in the record", code: "duplicate" });
  assert.ok(e instanceof ApiError && e instanceof Error);
  assert.equal(e.message, "already in the record");
  assert.equal(e.status, 409);
  assert.equal(e.code, "duplicate");
  assert.equal(apiError(502, null).message, "HTTP 502");
  assert.equal(apiError(500, { error: "" }).code, null);
  assert.equal(parseJson('{"a": 1}').a, 1);
  assert.equal(parseJson("<html>"), null);
});

test("after signing in, only a path on this server is followed", () => {
  assert.equal(signInUrl("/room/a b"), "/login?next=%2Froom%2Fa%20b");
  assert.equal(safeNext("/records?patient=P-1"), "/records?patient=P-1");
  for (const bad of [null, "", "//evil.example", "/\\evil.example", "https://evil.example/"]) {
    assert.equal(safeNext(bad), "/", bad);
  }
});

test("JSON calls: CSRF token once signed in, data back, errors thrown", async () => {
  const seen = fakeServer({
    "GET /api/session": [200, { csrf: "tok", display_name: "Ada" }],
    "POST /api/things": [201, { id: 7 }],
    "POST /api/refused": [403, { error: "not for you", code: "forbidden" }],
  });
  const api = createApi();
  assert.equal(api.csrf, null);
  assert.equal((await api.session()).display_name, "Ada");
  assert.equal(api.csrf, "tok");
  assert.deepEqual(await api.call("POST", "/api/things", { name: "x" }), { id: 7 });
  const post = seen[1];
  assert.equal(post.headers["X-CSRF-Token"], "tok");
  assert.equal(post.headers["Content-Type"], "application/json");
  assert.equal(post.body, '{"name":"x"}');
  assert.equal(seen[0].headers["X-CSRF-Token"], undefined, "no token on a GET");
  await assert.rejects(api.call("POST", "/api/refused", {}), { status: 403, code: "forbidden", message: "not for you" });
  api.forgetSession();
  assert.equal(api.csrf, null);
});

test("a 401 goes to the sign-in page and back (not for the sign-in itself)", async () => {
  fakeServer({ "GET /api/patients": [401, { error: "sign in" }], "POST /api/login": [401, { error: "wrong password" }] });
  const api = createApi();
  await assert.rejects(api.call("GET", "/api/patients"), { status: 401 });
  assert.equal(location.href, "/login?next=%2Frecords%3Fpatient%3DP-1");
  location.href = "/login";
  await assert.rejects(api.call("POST", "/api/login", {}), { message: "wrong password" });
  assert.equal(location.href, "/login");
});

test("a device's client sends its bearer token and stays on the page on 401", async () => {
  const seen = fakeServer({ "POST /api/appliances/d1/station/controls": [401, { error: "unknown appliance" }] });
  const api = createApi({ token: "secret", signIn: false });
  await assert.rejects(api.call("POST", "/api/appliances/d1/station/controls", { muted: true }), { status: 401 });
  assert.equal(seen[0].headers["Authorization"], "Bearer secret");
  assert.equal(seen[0].headers["X-CSRF-Token"], undefined);
  assert.equal(location.href, "/records?patient=P-1");
});

test("fetchOk: the response when OK, the server's error otherwise", async () => {
  fakeServer({ "GET /a.png": [200, undefined], "GET /b.png": [404, { error: "no such record" }], "GET /c.png": [500, undefined] });
  const api = createApi();
  assert.equal((await api.fetchOk("/a.png")).status, 200);
  await assert.rejects(api.fetchOk("/b.png"), { status: 404, message: "no such record" });
  await assert.rejects(api.fetchOk("/c.png"), { status: 500, message: "HTTP 500" });
});

// A stand-in XMLHttpRequest: answers with `answer` ([status, text]) or a network error (null).
function fakeXhr(answer, progress = []) {
  const sent = [];
  globalThis.XMLHttpRequest = class {
    constructor() { this.headers = {}; this.listeners = {}; this.upload = { addEventListener: (n, f) => { this.progress = f; } }; }
    open(method, url) { this.method = method; this.url = url; }
    setRequestHeader(name, value) { this.headers[name] = value; }
    addEventListener(name, f) { this.listeners[name] = f; }
    send(body) {
      sent.push(this);
      this.body = body;
      for (const p of progress) this.progress(p);
      queueMicrotask(() => {
        if (!answer) { this.listeners.error(); return; }
        [this.status, this.responseText] = answer;
        this.listeners.load();
      });
    }
  };
  return sent;
}

test("uploads send the file with the session's headers and report progress", async () => {
  fakeServer({ "GET /api/session": [200, { csrf: "tok" }] });
  const api = createApi();
  await api.session();
  const sent = fakeXhr([201, '{"category": "clinical_photo"}'],
    [{ lengthComputable: true, loaded: 5, total: 10 }, { lengthComputable: false, loaded: 0, total: 0 }]);
  const fractions = [];
  const answer = await uploadFile(api, { method: "POST", url: "/api/patients/1/records", file: "bytes",
    onProgress: (f) => fractions.push(f) });
  assert.deepEqual(answer, { status: 201, data: { category: "clinical_photo" } });
  assert.deepEqual(fractions, [0.5]);
  assert.equal(sent[0].headers["X-CSRF-Token"], "tok");
  assert.equal(sent[0].headers["Content-Type"], "application/octet-stream");
  assert.equal(sent[0].body, "bytes");
});

test("a refused upload reads like a refused call; a broken one says it broke off", async () => {
  const api = createApi();
  fakeXhr([409, '{"error": "same file", "code": "duplicate"}']);
  const refused = await uploadFile(api, { method: "POST", url: "/u", file: "x" }).catch((e) => e);
  assert.equal(refused.status, 409);
  assert.equal(refused.code, "duplicate");
  assert.equal(uploadProblem(refused), "same file");
  fakeXhr([413, "<html>too large</html>"]);
  const large = await uploadFile(api, { method: "PUT", url: "/u", file: "x", contentType: "application/fhir+json" })
    .catch((e) => e);
  assert.equal(uploadProblem(large), "the server answered HTTP 413");
  fakeXhr(null);
  const broken = await uploadFile(api, { method: "POST", url: "/u", file: "x" }).catch((e) => e);
  assert.equal(broken.status, undefined);
  assert.equal(uploadProblem(broken), BROKE_OFF);
  assert.equal(sentFraction({ lengthComputable: true, loaded: 12, total: 10 }), 1);
  assert.equal(sentFraction({ lengthComputable: true, loaded: 0, total: 0 }), null);
});
