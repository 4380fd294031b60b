// The sign-in page: sign in, then go back to the page that sent us here (a path on this
// server only). When the account has a second factor, the password is followed by its
// code; an account that must have one and has none sets it up here first.
import { createApi, safeNext } from "./api.js";
import { $ } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";

const api = createApi({ signIn: false });  // a refused code stays on this page
mountSwitch($("language-box"), api);

/** @type {string | null} the pending sign-in between the password and the code */
let pending = null;

/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));

/**
 * Ask for the code (after showing the set-up when the account must enrol first).
 * @param {{pending: string, second_factor: string}} answer
 */
async function askForCode(answer) {
  pending = answer.pending;
  input("username").disabled = true;
  input("password").disabled = true;
  if (answer.second_factor === "enrol") {
    const enrolment = await api.call("POST", "/api/login/enrol", { pending });
    input("enrol-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrolment.svg)}`;
    $("enrol-secret").textContent = enrolment.secret;
    $("enrol-box").hidden = false;
  }
  $("code-box").hidden = false;
  input("code").required = true;
  input("code").focus();
  $("login-button").textContent = t("login.confirm_code");
}

$("login-form").addEventListener("submit", async (/** @type {Event} */ ev) => {
  ev.preventDefault();
  const error = $("login-error");
  const button = /** @type {HTMLButtonElement} */ ($("login-button"));
  error.textContent = "";
  button.disabled = true;
  try {
    if (pending === null) {
      const answer = await api.call("POST", "/api/login", {
        username: input("username").value.trim(),
        password: input("password").value,
      });
      if (answer.second_factor) { await askForCode(answer); return; }
    } else {
      await api.call("POST", "/api/login/code", { pending, code: input("code").value.trim() });
    }
    location.href = safeNext(new URLSearchParams(location.search).get("next"));
  } catch (e) {
    error.textContent = e.message;
    input("code").value = "";
  } finally {
    button.disabled = false;
  }
});
$("login-button").disabled = false;  // the form is handled from here on
