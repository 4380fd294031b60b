// Releases on the server (field updates for the appliances): the list, deleting one
// (admins), and uploading a release wheel with its progress.
/* global Api */
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { fmtTime } from "./format.js";

function fmtBytes(n) {
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  return `${Math.max(1, Math.ceil(n / 1024))} kB`;
}

function fleetSay(text, kind) {
  $("release-state").textContent = text;
  $("release-state").classList.toggle("error", kind === "error");
}

// fleet: {role, refresh(force)} from admin_fleet.js.
export function releaseShelf(fleet) {
  function render(releases) {
    const body = emptiedTable("releases", releases);
    for (const r of releases) {
      const remove = fleet.role !== "admin" ? null : el("button", {
        type: "button", class: "danger", textContent: "Delete",
        dataset: { focusKey: `delete:${r.version}` },
        "aria-label": `Delete release ${r.version}`,
        onclick: (ev) => deleteRelease(ev.currentTarget, r.version),
      });
      body.append(el("tr", { dataset: { release: r.version } },
        el("td", {}, el("strong", {}, r.version)),
        el("td", { class: "nowrap" }, fmtBytes(r.size)),
        el("td", { class: "digest", title: r.sha256 }, r.sha256),
        el("td", { class: "nowrap" }, fmtTime(r.added_at)),
        el("td", { class: "actions" }, remove)));
    }
  }

  async function deleteRelease(button, version) {
    if (!confirm(`Delete release ${version} from the server? Appliances can no longer be updated to it.`)) return;
    button.disabled = true;
    try {
      await Api.call("DELETE", `/api/admin/releases/${encodeURIComponent(version)}`);
      say(`Release ${version} deleted.`);
    } catch (e) {
      say(`Release ${version} was not deleted: ${problem(e)}`, "error");
    }
    await fleet.refresh(true);
  }

  function upload(ev) {
    ev.preventDefault();
    const file = $("release-file").files[0];
    if (!file) { fleetSay("Choose a release wheel (.whl) first.", "error"); $("release-progress-box").hidden = false; return; }
    const button = $("release-upload");
    button.disabled = true;
    $("release-progress-box").hidden = false;
    $("release-progress").value = 0;
    fleetSay(`Sending ${file.name}…`);
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/api/admin/releases/${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("X-CSRF-Token", Api.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total) {
        $("release-progress").value = e.loaded / e.total;
        fleetSay(e.loaded < e.total ? `Sending ${file.name}: ${Math.floor(100 * e.loaded / e.total)} %` : `Checking ${file.name}…`);
      }
    });
    const done = () => { button.disabled = false; fleet.refresh(true); };
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status === 401) { location.href = "/login?next=/admin"; return; }
      if (xhr.status === 201 || xhr.status === 200) {
        $("release-progress").value = 1;
        fleetSay(xhr.status === 201 ? `Release ${data.version} stored (${fmtBytes(data.size)}).`
          : `Release ${data.version} was already stored with these same contents.`);
        $("release-file").value = "";
      } else {
        $("release-progress").value = 0;
        fleetSay(`${file.name} was not stored: ${(data && data.error) || `the server answered HTTP ${xhr.status}`}`, "error");
      }
      done();
    });
    xhr.addEventListener("error", () => {
      fleetSay(`The upload of ${file.name} broke off (network problem, or the file is larger than the server accepts).`, "error");
      done();
    });
    xhr.send(file);
  }

  return { render, upload };
}
