// Accounts (admins): the list, creating and editing an account, a new one-time set-password
// link (reset), disabling and enabling. The link is shown once, to the admin, to hand on.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { adminTime } from "./admin_access.js";
import { t } from "./i18n.js";

/**
 * @typedef {{username: string, display_name: string, role: string, clinic: string | null,
 *   email: string | null, time_zone: string | null, disabled: boolean, totp: boolean,
 *   link_expires: string | null}} AccountRow
 */

/** @param {string} role */
export function roleText(role) {
  const names = /** @type {Record<string, () => string>} */ ({
    expert: () => t("admin.accounts.role.expert"), chair: () => t("admin.accounts.role.chair"),
    clinic: () => t("admin.accounts.role.clinic"), admin: () => t("admin.accounts.role.admin"),
    technician: () => t("admin.accounts.role.technician"),
  });
  return names[role] ? names[role]() : role;
}

/**
 * What the state column says.
 * @param {AccountRow} a
 */
export function accountStateText(a) {
  if (a.disabled) return t("admin.accounts.state.disabled");
  if (a.link_expires) return t("admin.accounts.state.link", { when: adminTime(a.link_expires) });
  return t("admin.accounts.state.active");
}

/**
 * The request body from the form's values: empty optional fields are null, a clinic only
 * for clinic staff; `editing` leaves the user name out.
 * @param {{username: string, display_name: string, role: string, clinic: string,
 *   email: string, time_zone: string}} form
 * @param {boolean} editing
 */
export function accountBody(form, editing) {
  /** @type {Record<string, string | null>} */
  const body = {
    display_name: form.display_name.trim(),
    role: form.role,
    clinic: form.role === "clinic" ? form.clinic || null : null,
    email: form.email.trim() || null,
    time_zone: form.time_zone.trim() || null,
  };
  if (!editing) body.username = form.username.trim();
  return body;
}

/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));

/**
 * The accounts section of /admin.
 * @param {import("./api.js").Api} api
 */
export function accountDesk(api) {
  /** @type {string | null} the account being edited, or null when creating */
  let editing = null;
  /** @type {AccountRow[]} */
  let accounts = [];

  function formValues() {
    return {
      username: input("account-username").value, display_name: input("account-name").value,
      role: input("account-role").value, clinic: input("account-clinic").value,
      email: input("account-email").value, time_zone: input("account-zone").value,
    };
  }

  function syncClinic() {
    const staff = input("account-role").value === "clinic";
    input("account-clinic").disabled = !staff;
    input("account-clinic").required = staff;
  }

  /** @param {string[]} roles @param {string[]} clinics */
  function fillChoices(roles, clinics) {
    const role = input("account-role").value || "expert";
    $("account-role").replaceChildren(...roles.map((r) => el("option", { value: r }, roleText(r))));
    input("account-role").value = role;
    const clinic = input("account-clinic").value;
    $("account-clinic").replaceChildren(el("option", { value: "" }, t("admin.accounts.no_clinic")),
      ...clinics.map((c) => el("option", { value: c }, c)));
    input("account-clinic").value = clinics.includes(clinic) ? clinic : "";
    const intl = /** @type {{supportedValuesOf?: (what: string) => string[]}} */ (/** @type {unknown} */ (Intl));
    const zones = intl.supportedValuesOf ? intl.supportedValuesOf("timeZone") : [];
    if (!$("account-zones").childElementCount) {
      $("account-zones").append(...zones.map((z) => el("option", { value: z })));
    }
    syncClinic();
  }

  /** @param {AccountRow} a */
  function row(a) {
    const user = { user: a.username };
    /** @param {string} text @param {string} label @param {() => void} act @param {string} [cls] */
    const own = (text, label, act, cls = "") => el("button", {
      type: "button", class: cls, textContent: text, "aria-label": label, onclick: act,
    });
    return el("tr", { dataset: { account: a.username }, class: a.disabled ? "muted" : "" },
      el("td", {}, el("strong", { translate: "no" }, a.username)),
      el("td", {}, a.display_name),
      el("td", {}, roleText(a.role)),
      el("td", {}, a.clinic || ""),
      el("td", {}, a.email || ""),
      el("td", {}, a.time_zone || ""),
      el("td", {}, accountStateText(a)),
      el("td", {}, a.totp ? t("admin.accounts.totp_on") : t("admin.accounts.totp_off")),
      el("td", { class: "actions" },
        own(t("admin.accounts.edit"), t("admin.accounts.edit_label", user), () => edit(a)),
        own(t("admin.accounts.reset"), t("admin.accounts.reset_label", user), () => reset(a)),
        a.disabled
          ? own(t("admin.accounts.enable"), t("admin.accounts.enable_label", user), () => toggle(a, "enable"))
          : own(t("admin.accounts.disable"), t("admin.accounts.disable_label", user),
            () => toggle(a, "disable"), "danger")));
  }

  async function load() {
    try {
      const data = await api.call("GET", "/api/admin/accounts");
      accounts = data.accounts;
      fillChoices(data.roles, data.clinics);
      const body = emptiedTable("accounts", accounts);
      for (const a of accounts) body.append(row(a));
    } catch (e) {
      say(t("admin.accounts.not_loaded", { problem: problem(e) }), "error");
    }
  }

  /** @param {{username: string, link: string, expires_at: string}} issued */
  function showLink(issued) {
    $("account-link-box").hidden = false;
    $("account-link-for").textContent = t("admin.accounts.link_for",
      { user: issued.username, when: adminTime(issued.expires_at) });
    input("account-link").value = location.origin + issued.link;
    input("account-link").select();
  }

  /** @param {AccountRow} a */
  function edit(a) {
    editing = a.username;
    input("account-username").value = a.username;
    input("account-username").disabled = true;
    input("account-name").value = a.display_name;
    input("account-role").value = a.role;
    input("account-clinic").value = a.clinic || "";
    input("account-email").value = a.email || "";
    input("account-zone").value = a.time_zone || "";
    $("account-submit").textContent = t("admin.accounts.save");
    $("account-cancel").hidden = false;
    syncClinic();
    input("account-name").focus();
  }

  function stopEditing() {
    editing = null;
    /** @type {HTMLFormElement} */ ($("account-form")).reset();
    input("account-username").disabled = false;
    $("account-submit").textContent = t("admin.accounts.create");
    $("account-cancel").hidden = true;
    syncClinic();
  }

  /** @param {Event} ev */
  async function submit(ev) {
    ev.preventDefault();
    const body = accountBody(formValues(), editing !== null);
    const button = /** @type {HTMLButtonElement} */ ($("account-submit"));
    button.disabled = true;
    try {
      if (editing !== null) {
        await api.call("PATCH", `/api/admin/accounts/${encodeURIComponent(editing)}`, body);
        say(t("admin.accounts.saved", { user: editing }));
      } else {
        const issued = await api.call("POST", "/api/admin/accounts", body);
        say(t("admin.accounts.created", { user: issued.username }));
        showLink(issued);
      }
      stopEditing();
    } catch (e) {
      say(t("admin.accounts.not_saved", { problem: problem(e) }), "error");
    } finally {
      button.disabled = false;
    }
    await load();
  }

  /** @param {AccountRow} a */
  async function reset(a) {
    if (!confirm(t("admin.accounts.confirm_reset", { user: a.username }))) return;
    const clear = a.totp && confirm(t("admin.accounts.confirm_clear_totp", { user: a.username }));
    try {
      const path = `/api/admin/accounts/${encodeURIComponent(a.username)}/reset`;
      showLink(await api.call("POST", path, { clear_totp: clear }));
      say(t("admin.accounts.was_reset", { user: a.username }));
    } catch (e) {
      say(t("admin.accounts.not_saved", { problem: problem(e) }), "error");
    }
    await load();
  }

  /** @param {AccountRow} a @param {"enable" | "disable"} action */
  async function toggle(a, action) {
    if (action === "disable" && !confirm(t("admin.accounts.confirm_disable", { user: a.username }))) return;
    try {
      await api.call("POST", `/api/admin/accounts/${encodeURIComponent(a.username)}/${action}`);
      const user = { user: a.username };
      say(action === "disable" ? t("admin.accounts.disabled", user) : t("admin.accounts.enabled", user));
    } catch (e) {
      say(t("admin.accounts.not_saved", { problem: problem(e) }), "error");
    }
    await load();
  }

  $("account-form").addEventListener("submit", submit);
  $("account-role").addEventListener("change", syncClinic);
  $("account-cancel").addEventListener("click", stopEditing);
  $("account-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input("account-link").value);
      say(t("admin.accounts.copied"));
    } catch (e) {
      input("account-link").select();  // copy by hand
    }
  });
  $("accounts-section").hidden = false;
  return { load };
}
