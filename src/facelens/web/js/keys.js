// The API key: kept for this browser tab only (sessionStorage), asked for in a dialog.

import { $ } from "./dom.js";

const KEY = "facelens-api-key";

let keyQuestion = null;
let whenAnswered = () => {};

/** The key this tab holds, or null. */
export function storedKey() {
  return sessionStorage.getItem(KEY);
}

/** What to do each time the key dialog closes (main.js: bring the header up to date). */
export function onKeyAnswered(callback) {
  whenAnswered = callback;
}

/** Ask for the key (``required``: the server refused a request without one); true once a key
 * was given. Asked once at a time: callers meanwhile share the same answer. */
export function askForKey(required) {
  if (keyQuestion) return keyQuestion;
  const dialog = $("key-dialog");
  $("key-input").value = storedKey() || "";
  dialog.querySelector("p").textContent = required
    ? "This server needs an API key. It is kept for this browser tab only."
    : "The key is sent with every request and kept for this browser tab only.";
  keyQuestion = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        keyQuestion = null;
        const key = $("key-input").value.trim();
        if (dialog.returnValue === "save" && key) {
          sessionStorage.setItem(KEY, key);
          resolve(true);
        } else {
          if (dialog.returnValue === "clear") sessionStorage.removeItem(KEY);
          resolve(false);
        }
        whenAnswered();
      },
      { once: true },
    );
  });
  dialog.returnValue = "";
  dialog.showModal();
  return keyQuestion;
}
