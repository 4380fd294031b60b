// Releases on the server (field updates for the appliances): the list, deleting one
// (admins), and uploading a release wheel with its progress.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { fmtBytes, fmtTime } from "./format.js";
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
        type: "button", class: "danger", textContent: "Delete",
        dataset: { focusKey: `delete:${r.version}` },
        "aria-label": `Delete release ${r.version}`,
        onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => deleteRelease(ev.currentTarget, r.version),
      });
      body.append(el("tr", { dataset: { release: r.version } },
        el("td", {}, el("strong", {}, r.version)),
        el("td", { class: "nowrap" }, fmtBytes(r.size)),
        el("td", { class: "digest", title: r.sha256 }, r.sha256),
        el("td", { class: "nowrap" }, fmtTime(r.added_at)),
        el("td", { class: "actions" }, remove)));
    }
  }

  /** @param {HTMLButtonElement} button @param {string} version */
  async function deleteRelease(button, version) {
    if (!confirm(`Delete release ${version} from the server? Appliances can no longer be updated to it.`)) return;
    button.disabled = true;
    try {
      await fleet.api.call("DELETE", `/api/admin/releases/${encodeURIComponent(version)}`);
      say(`Release ${version} deleted.`);
    } catch (e) {
      say(`Release ${version} was not deleted: ${problem(e)}`, "error");
    }
    await fleet.refresh(true);
  }

  /** @param {Event} ev the upload form's submit */
  function upload(ev) {
    ev.preventDefault();
    const file = $("release-file").files[0];
    if (!file) { fleetSay("Choose a release wheel (.whl) first.", "error"); $("release-progress-box").hidden = false; return; }
    const button = $("release-upload");
    button.disabled = true;
    $("release-progress-box").hidden = false;
    $("release-progress").value = 0;
    fleetSay(`Sending ${file.name}…`);
    const progress = /** @type {HTMLProgressElement} */ ($("release-progress"));
    uploadFile(fleet.api, {
      method: "PUT", url: `/api/admin/releases/${encodeURIComponent(file.name)}`, file,
      onProgress: (f) => {
        progress.value = f;
        fleetSay(f < 1 ? `Sending ${file.name}: ${Math.floor(100 * f)} %` : `Checking ${file.name}…`);
      },
    }).then(({ status, data }) => {
      progress.value = 1;
      fleetSay(status === 201 ? `Release ${data.version} stored (${fmtBytes(data.size)}).`
        : `Release ${data.version} was already stored with these same contents.`);
      /** @type {HTMLInputElement} */ ($("release-file")).value = "";
    }, (e) => {
      if (e.status === 401) return;  // on the way to the sign-in page
      if (!e.status) {
        fleetSay(`The upload of ${file.name} broke off (network problem, or the file is larger than the server accepts).`, "error");
      } else {
        progress.value = 0;
        fleetSay(`${file.name} was not stored: ${uploadProblem(e)}`, "error");
      }
    }).finally(() => { button.disabled = false; fleet.refresh(true); });
  }

  return { render, upload };
}
