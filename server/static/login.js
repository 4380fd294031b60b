// The sign-in page: sign in, then go back to the page that sent us here (a path on this
// server only).
import { createApi, safeNext } from "./api.js";
import { $ } from "./dom.js";
import { mountSwitch } from "./i18n.js";

const api = createApi();
mountSwitch($("language-box"), api);

$("login-form").addEventListener("submit", async (/** @type {Event} */ ev) => {
  ev.preventDefault();
  const error = $("login-error");
  const button = /** @type {HTMLButtonElement} */ ($("login-button"));
  error.textContent = "";
  button.disabled = true;
  try {
    await api.call("POST", "/api/login", {
      username: /** @type {HTMLInputElement} */ ($("username")).value.trim(),
      password: /** @type {HTMLInputElement} */ ($("password")).value,
    });
    location.href = safeNext(new URLSearchParams(location.search).get("next"));
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
});
$("login-button").disabled = false;  // the form is handled from here on
