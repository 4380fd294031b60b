// The one-time set-password page (a new account's link, or a reset's): the token comes in
// the address's fragment, which no server or log sees; it is taken out of the address bar.
import { createApi } from "./api.js";
import { $ } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";

const api = createApi({ signIn: false });
mountSwitch($("language-box"), api);

/**
 * The token in a fragment like "#token=…", or "".
 * @param {string} hash
 */
export function tokenOf(hash) {
  return new URLSearchParams(hash.replace(/^#/, "")).get("token") || "";
}

const token = tokenOf(location.hash);
history.replaceState(null, "", location.pathname);
$("password-rules").textContent = t("password.rules");

/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));

$("password-form").addEventListener("submit", async (/** @type {Event} */ ev) => {
  ev.preventDefault();
  const error = $("password-error");
  error.textContent = "";
  if (!token) { error.textContent = t("password.no_token"); return; }
  if (input("password").value !== input("password-again").value) {
    error.textContent = t("password.mismatch");
    return;
  }
  const button = /** @type {HTMLButtonElement} */ ($("password-button"));
  button.disabled = true;
  try {
    await api.call("POST", "/api/account/password", { token, password: input("password").value });
    input("password").value = input("password-again").value = "";
    input("password").disabled = input("password-again").disabled = true;
    button.hidden = true;
    $("password-done").hidden = false;
  } catch (e) {
    error.textContent = e.message;
    button.disabled = false;
  }
});
$("password-button").disabled = false;
