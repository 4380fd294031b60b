// Releases on the server (field updates for the appliances): the list, deleting one
// (admins), and uploading a release wheel with its progress.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { adminTime } from "./admin_access.js";
import { fmtBytes } from "./format.js";
import { t } from "./i18n.js";
import { uploadFile, uploadProblem } from "./upload.js";

/** @param {string} text @param {string} [kind] "error" shows it as an error */
function fleetSay(text, kind) {
  $("release-state").textContent = text;
  $("release-state").classList.toggle("error", kind === "error");
}

/**
 * The releases table and the upload form.
 * @param {{api: import("./api.js").Api, role: string, refresh: (force: boolean) => Promise<void>}} fleet
 *   from admin_fleet.js
 */
export function releaseShelf(fleet) {
  /** @param {{version: string, size: number, sha256: string, added_at: string}[]} releases */
  function render(releases) {
    const body = emptiedTable("releases", releases);
    for (const r of releases) {
      const remove = fleet.role !== "admin" ? null : el("button", {
        type: "button", class: "danger", textContent: t("admin.releases.delete"),
        dataset: { focusKey: `delete:${r.version}` },
        "aria-label": t("admin.releases.delete_label", { version: r.version }),
        onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => deleteRelease(ev.currentTarget, r.version),
      });
      body.append(el("tr", { dataset: { release: r.version } },
        el("td", {}, el("strong", {}, r.version)),
        el("td", { class: "nowrap" }, fmtBytes(r.size)),
        el("td", { class: "digest", title: r.sha256 }, r.sha256),
        el("td", { class: "nowrap" }, adminTime(r.added_at)),
        el("td", { class: "actions" }, remove)));
    }
  }

  /** @param {HTMLButtonElement} button @param {string} version */
  async function deleteRelease(button, version) {
    if (!confirm(t("admin.releases.confirm_delete", { version }))) return;
    button.disabled = true;
    try {
      await fleet.api.call("DELETE", `/api/admin/releases/${encodeURIComponent(version)}`);
      say(t("admin.releases.deleted", { version }));
    } catch (e) {
      say(t("admin.releases.not_deleted", { version, problem: problem(e) }), "error");
    }
    await fleet.refresh(true);
  }

  /** @param {Event} ev the upload form's submit */
  function upload(ev) {
    ev.preventDefault();
    const file = $("release-file").files[0];
    if (!file) { fleetSay(t("admin.releases.choose"), "error"); $("release-progress-box").hidden = false; return; }
    const button = $("release-upload");
    button.disabled = true;
    $("release-progress-box").hidden = false;
    $("release-progress").value = 0;
    fleetSay(t("admin.sending", { name: file.name }));
    const progress = /** @type {HTMLProgressElement} */ ($("release-progress"));
    uploadFile(fleet.api, {
      method: "PUT", url: `/api/admin/releases/${encodeURIComponent(file.name)}`, file,
      onProgress: (f) => {
        progress.value = f;
        fleetSay(f < 1 ? t("admin.releases.sending_pct", { name: file.name, pct: Math.floor(100 * f) })
          : t("admin.releases.checking", { name: file.name }));
      },
    }).then(({ status, data }) => {
      progress.value = 1;
      fleetSay(status === 201 ? t("admin.releases.stored", { version: data.version, size: fmtBytes(data.size) })
        : t("admin.releases.already", { version: data.version }));
      /** @type {HTMLInputElement} */ ($("release-file")).value = "";
    }, (e) => {
      if (e.status === 401) return;  // on the way to the sign-in page
      if (!e.status) {
        fleetSay(t("admin.releases.broke_off", { name: file.name }), "error");
      } else {
        progress.value = 0;
        fleetSay(t("admin.releases.not_stored", { name: file.name, problem: uploadProblem(e) }), "error");
      }
    }).finally(() => { button.disabled = false; fleet.refresh(true); });
  }

  return { render, upload };
}
