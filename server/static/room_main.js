// The main-window chooser: the keyboard's (and a screen reader's) way to do what a click on
// a window of the composite does. It lists the windows of this expert's layout by their
// labels and keeps the current main window selected; a change asks the server for it.
import { $ } from "./dom.js";

/**
 * The windows to choose from, in the layout's order.
 * @param {{tiles: any[][], labels: Record<string, string>}} room the room state
 * @returns {{value: string, label: string}[]}
 */
export function mainChoices(room) {
  return room.tiles.map(([w]) => ({ value: String(w), label: room.labels[w] || String(w) }));
}

export const MainChooser = {
  /** @param {(message: any) => void} send the room socket's send */
  setup(send) {
    const select = /** @type {HTMLSelectElement} */ ($("main-window"));
    select.addEventListener("change", () => send({ type: "main", window: select.value }));
  },

  /** @param {{tiles: any[][], labels: Record<string, string>, main: string}} room */
  render(room) {
    const select = /** @type {HTMLSelectElement} */ ($("main-window"));
    const choices = mainChoices(room);
    const signature = JSON.stringify(choices);
    if (select.dataset.choices !== signature) {
      select.replaceChildren(...choices.map(({ value, label }) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = label;
        return option;
      }));
      select.dataset.choices = signature;
    }
    select.value = room.main;
  },
};
