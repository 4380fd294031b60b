"use strict";
(async () => {
  document.getElementById("logout").onclick = () => Api.logout();
  const s = await Api.session();
  document.getElementById("who").textContent = s.display_name;
  document.getElementById("admin-link").hidden = s.role !== "admin";
  const list = document.getElementById("consultations");
  for (const c of s.consultations) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${c.title} — patient ${c.patient}`;
    const join = document.createElement("a");
    join.href = "/room/" + encodeURIComponent(c.id);
    join.textContent = "Join";
    join.className = "join";
    const records = document.createElement("a");
    records.href = `/records?patient=${encodeURIComponent(c.patient)}&consultation=${encodeURIComponent(c.id)}`;
    records.textContent = "Patient records";
    records.className = "records";
    const links = document.createElement("span");
    links.className = "links";
    links.append(records, join);
    li.append(text, links);
    list.append(li);
  }
  for (const st of s.stations || []) {  // clinic staff: their clinic's bedside stations
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `Clinic station — ${st.clinic} (${st.device})`;
    const open = document.createElement("a");
    open.href = "/station/" + encodeURIComponent(st.device);
    open.textContent = "Open the station";
    open.className = "join";
    li.append(text, open);
    list.append(li);
  }
  document.getElementById("records-link").hidden = s.role === "clinic";
  document.getElementById("empty").hidden = s.consultations.length + (s.stations || []).length > 0;
})();
