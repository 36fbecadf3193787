// The page's own dialogs for a yes or no and for a line of text (not confirm() or prompt():
// their words can hold names, shown as text.js shows them).

import { $ } from "./dom.js";
import { sentence } from "./text.js";

/** Show ``dialog``; its answer, once closed, as ``read`` makes it of the button pressed. */
export function answered(dialog, read) {
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(read(dialog.returnValue)), { once: true }),
  );
}

/** True once the user confirms ``action`` (the button's word). */
export function confirmAction(text, action) {
  $("confirm-text").replaceChildren(...sentence(...[text].flat()));
  $("confirm-yes").textContent = action;
  return answered($("confirm-dialog"), (value) => value === "yes");
}

/** The text the user typed, or null: cancelled. */
export function askText(question, value) {
  $("prompt-text").replaceChildren(...sentence(...[question].flat()));
  $("prompt-input").value = value;
  return answered($("prompt-dialog"), (choice) =>
    choice === "ok" ? $("prompt-input").value.trim() : null,
  );
}
