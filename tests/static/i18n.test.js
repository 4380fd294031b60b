// node --test: the pages' catalogue module (server/static/i18n.js) and the formats that
// speak through it (server/static/format.js), in English and in Simplified Chinese.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { formatDateTime, lang, normalize, setCatalogue, t } from "../../server/static/i18n.js";
import { fmtLeft, fmtMinutes, fmtTime } from "../../server/static/format.js";

/** @param {string} code */
const catalogue = (code) =>
  JSON.parse(readFileSync(new URL(`../../server/static/i18n/${code}.json`, import.meta.url), "utf8"));
const en = catalogue("en");
const zh = catalogue("zh-CN");

/** Run `body` with the page in `code` (and English as the fallback), then back to English. */
function inLanguage(code, strings, body) {
  setCatalogue(code, strings, en);
  try {
    body();
  } finally {
    setCatalogue("en", en);
  }
}

test("placeholders are filled; one not given stays as written", () => {
  inLanguage("en", { greet: "Hello {name}, {name}! {missing}" }, () => {
    assert.equal(t("greet", { name: "Ada" }), "Hello Ada, Ada! {missing}");
  });
});

test("a count picks the plural form of the page's language", () => {
  const files = { files: { one: "{count} file", other: "{count} files" } };
  inLanguage("en", files, () => {
    assert.equal(t("files", { count: 1 }), "1 file");
    assert.equal(t("files", { count: 2 }), "2 files");
    assert.equal(t("files", { count: 0 }), "0 files");
  });
  inLanguage("zh-CN", { files: { other: "{count} 个文件" } }, () => {
    assert.equal(t("files", { count: 1 }), "1 个文件");  // Chinese has one form only
  });
});

test("an unknown key shows itself; a key missing in Chinese falls back to English", () => {
  assert.equal(t("no.such.key"), "no.such.key");
  inLanguage("zh-CN", {}, () => {
    assert.equal(lang(), "zh-CN");
    assert.equal(t("login.sign_in"), "Sign in");
  });
  inLanguage("zh-CN", zh, () => assert.equal(t("login.sign_in"), "登录"));
  assert.equal(lang(), "en");
  assert.equal(t("login.sign_in"), "Sign in");
});

test("language tags become one of the offered languages", () => {
  assert.equal(normalize("zh"), "zh-CN");
  assert.equal(normalize("zh-Hans-CN"), "zh-CN");
  assert.equal(normalize("ZH-tw"), "zh-CN");
  assert.equal(normalize("en-GB"), "en");
  assert.equal(normalize("fr"), "en");
  assert.equal(normalize(""), "en");
  assert.equal(normalize(null), "en");
  assert.equal(normalize(undefined), "en");
});

test("dates and times in Chinese: the page's language, the viewer's time zone", () => {
  const when = "2026-03-04T05:06:07Z";
  const local = new Date(when);
  inLanguage("zh-CN", zh, () => {
    const shown = formatDateTime(when);
    assert.match(shown, /2026年/);
    assert.ok(shown.includes(`${local.getMonth() + 1}月${local.getDate()}日`), shown);
    assert.equal(formatDateTime(when, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
      `${String(local.getHours()).padStart(2, "0")}:${String(local.getMinutes()).padStart(2, "0")}`);
    assert.match(fmtTime(when), /2026年/);
  });
  assert.doesNotMatch(formatDateTime(when), /年/);
  assert.match(formatDateTime(when), /2026/);
});

test("durations and time left come from the catalogue, in both languages", () => {
  const now = Date.parse("2026-03-04T12:00:00Z");
  const at = (minutes) => new Date(now + minutes * 60000).toISOString();
  inLanguage("zh-CN", zh, () => {
    assert.equal(fmtLeft(at(12), now), "剩余 12 分钟");
    assert.equal(fmtLeft(at(135), now), "剩余 2 小时 15 分钟");
    assert.equal(fmtLeft(at(72 * 60), now), "剩余 3 天");
    assert.equal(fmtMinutes(90), "1 小时 30 分钟");
    assert.equal(fmtMinutes(0), "默认");
  });
  assert.equal(fmtLeft(at(12), now), "12 min left");
});

test("both catalogues have the same keys and the same placeholders", () => {
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
  const fields = (value) =>
    [...new Set((typeof value === "object" ? Object.values(value) : [value])
      .flatMap((text) => [...String(text).matchAll(/\{(\w+)\}/g)].map((m) => m[1])))].sort();
  for (const key of Object.keys(en)) assert.deepEqual(fields(zh[key]), fields(en[key]), key);
});
