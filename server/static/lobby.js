"use strict";
(async () => {
  document.getElementById("logout").onclick = () => Api.logout();
  const s = await Api.session();
  document.getElementById("who").textContent = s.display_name;
  const list = document.getElementById("consultations");
  for (const c of s.consultations) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${c.title} — patient ${c.patient}`;
    const join = document.createElement("a");
    join.href = "/room/" + encodeURIComponent(c.id);
    join.textContent = "Join";
    join.className = "join";
    li.append(text, join);
    list.append(li);
  }
  document.getElementById("empty").hidden = s.consultations.length > 0;
})();
