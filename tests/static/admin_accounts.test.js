// node --test: the pure parts of the admin page's accounts section.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { accountBody, accountStateText, roleText } from "../../server/static/admin_accounts.js";

test("account form: empty optional fields are null, a clinic only for clinic staff", () => {
  const form = { username: " li ", display_name: " Nurse Li ", role: "clinic", clinic: "Hill", email: "", time_zone: "Asia/Shanghai" };
  assert.deepEqual(accountBody(form, false), {
    username: "li", display_name: "Nurse Li", role: "clinic", clinic: "Hill", email: null, time_zone: "Asia/Shanghai",
  });
  const edited = accountBody({ ...form, role: "expert" }, true);
  assert.equal(edited.clinic, null);
  assert.equal("username" in edited, false);
});

test("account state and role read as words", () => {
  const a = { username: "li", display_name: "Li", role: "clinic", clinic: "Hill", email: null,
    time_zone: null, disabled: false, totp: false, link_expires: null };
  assert.equal(accountStateText(a), "active");
  assert.equal(accountStateText({ ...a, disabled: true }), "disabled");
  assert.match(accountStateText({ ...a, link_expires: "2026-12-10T08:00:00+00:00" }), /^waiting for a password/);
  assert.equal(roleText("clinic"), "Clinic staff");
  assert.equal(roleText("unknown"), "unknown");
});
