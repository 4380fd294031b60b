// Small DOM helpers shared by the records and admin pages (ES module): elements are built
// with text content only (record titles and EMR fields are user input).
export const $ = (id) => document.getElementById(id);

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && !key.includes("-")) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function problem(e) {
  if (e && e.status) return e.message;
  return "the server cannot be reached — check the network connection and try again";
}

// The page's status line (#status); kind "error" shows it as an error.
export function say(text, kind) {
  const status = $("status");
  status.textContent = text || "";
  status.classList.toggle("error", kind === "error");
}

// The emptied <tbody id=id> of a list shown as table #id-table, or as the note #id-empty
// when there are no rows.
export function emptiedTable(id, rows) {
  const body = $(id);
  body.replaceChildren();
  $(`${id}-empty`).hidden = rows.length > 0;
  $(`${id}-table`).hidden = rows.length === 0;
  return body;
}
