// The header's line: whether the server is ready, its model, threshold and how many people.

import { PLAIN, fetchWithKey } from "./api.js";
import { $ } from "./dom.js";

export async function showStatus() {
  try {
    // With keys on, the server tells how many people only to a key holder (else null).
    const response = await fetchWithKey("/readyz");
    const ready = await response.json();
    let people = ""; // not told: keys are on and this tab holds no valid key
    if (typeof ready.people === "number") {
      people = ready.people === 1 ? " · 1 person" : ` · ${ready.people} people`;
    }
    $("server-status").textContent = response.ok
      ? `Ready · model ${ready.profile} · threshold ${ready.threshold}${people}`
      : "Not ready: " + ready.problems.join("; ");
  } catch {
    $("server-status").textContent = PLAIN[0];
  }
}
