// The banners at the top that say what went wrong, and the way every user action runs.

import { $ } from "./dom.js";
import { showStatus } from "./status.js";
import { sentence } from "./text.js";

/** A banner made of strings and name elements, until dismissed or the next action. */
export function showError(...parts) {
  const line = document.createElement("p");
  const words = document.createElement("span");
  words.append(...sentence(...parts));
  const close = document.createElement("button");
  close.type = "button";
  close.className = "secondary";
  close.textContent = "Dismiss";
  close.addEventListener("click", () => line.remove());
  line.append(words, close);
  $("messages").append(line);
}

export function clearErrors() {
  $("messages").replaceChildren();
}

/** Run ``work``; what it throws is shown in a banner. */
export async function guarded(work) {
  try {
    await work();
  } catch (error) {
    showError(error.message);
  }
}

/** A user's action: the banners of earlier ones go, its own errors are shown, and the
 * header (ready, how many people) is brought up to date whatever happened. */
export async function act(work) {
  clearErrors();
  $("people-status").textContent = "";
  await guarded(work);
  await showStatus();
}
