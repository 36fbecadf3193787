// The facelens web console: plain JavaScript over the server's /v1 API, ES modules served as
// they are (no build step, no CDN). This one wires the page: its tabs and its buttons.
// Names and messages are always inserted as text, never as HTML (text.js).

import { startCamera, stopCamera } from "./camera.js";
import { $ } from "./dom.js";
import { showEvents, stopEvents } from "./events.js";
import { askForKey, onKeyAnswered } from "./keys.js";
import { clearErrors } from "./messages.js";
import { addPerson, loadPeople, renderPeople } from "./people.js";
import { setUpRecognize } from "./recognize.js";
import { runReview } from "./review.js";
import { showStatus } from "./status.js";
import { addStream, showStreams, stopStreams } from "./streams.js";
import { setUpVerify } from "./verify.js";

function selectTab(tab) {
  if (tab.getAttribute("aria-selected") !== "true") clearErrors(); // they were about the other tab
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  const panel = tab.getAttribute("aria-controls");
  showStatus(); // people may have come or gone since (other clients, the command line)
  if (panel === "people") loadPeople();
  if (panel !== "camera") stopCamera();
  if (panel === "events") showEvents();
  else stopEvents();
  if (panel === "streams") showStreams();
  else stopStreams();
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
}

// A module runs once the page is parsed: its elements are there.
setUpTabs();
setUpRecognize();
setUpVerify();
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
$("add-person").addEventListener("submit", addPerson);
$("people-search").addEventListener("input", renderPeople);
$("review-run").addEventListener("click", runReview);
$("add-stream").addEventListener("submit", addStream);
$("events-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors();
  showEvents();
});
$("key-button").addEventListener("click", () => askForKey(false));
onKeyAnswered(showStatus); // the count of people is shown to key holders only
showStatus();
