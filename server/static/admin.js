// Admin page. Records admins: decide access requests, review break-glass accesses, revoke
// grants, import a FHIR Bundle. Admins and technicians: the appliances, their releases and
// updates. Admins: accounts. Server data is put in the page as text only. This module starts
// the page; the parts live in admin_access.js, admin_import.js, admin_fleet.js,
// admin_releases.js, admin_appliances.js (enrolling appliances) and admin_accounts.js.
import { createApi } from "./api.js";
import { $, problem, say } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";
import { accessDesk, showNotAdmin } from "./admin_access.js";
import { startEnrolment } from "./admin_appliances.js";
import { accountDesk } from "./admin_accounts.js";
import { startFleet } from "./admin_fleet.js";
import { startImport } from "./admin_import.js";

const REFRESH_MS = 15000;
const api = createApi();

(async () => {
  $("logout").addEventListener("click", () => api.logout());
  mountSwitch($("language-slot"), api);
  let session;
  try {
    session = await api.session();
  } catch (e) {
    say(t("admin.unreachable", { problem: problem(e) }), "error");
    return;
  }
  $("who").textContent = session.display_name;
  if (session.role === "admin" || session.role === "technician") {
    startFleet(api, session.role);
    startEnrolment(api);
  }
  if (session.role === "technician") return;
  if (session.role !== "admin") { showNotAdmin(); return; }
  const desk = accessDesk(api);
  $("admin").hidden = false;
  const accounts = accountDesk(api);
  $("refresh").addEventListener("click", () => { desk.load(true); accounts.load(); });
  $("import-form").addEventListener("submit", (/** @type {Event} */ ev) => startImport(api, ev));
  await Promise.all([desk.load(true), accounts.load()]);
  setInterval(() => { if (!document.hidden) desk.load(false); }, REFRESH_MS);
})();
