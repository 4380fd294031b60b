"use strict";
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-button");
  error.textContent = "";
  button.disabled = true;
  try {
    await Api.call("POST", "/api/login", {
      username: document.getElementById("username").value.trim(),
      password: document.getElementById("password").value,
    });
    const next = new URLSearchParams(location.search).get("next");
    // Only a path on this server (never "//host" or "/\\host", which browsers treat as hosts).
    const local = next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\");
    location.href = local ? next : "/";
  } catch (e) {
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
});
