// The Events tab: the newest events, then new ones as they happen (server-sent events), with
// filters by stream, person and kind.

import { api, errorOf, fetchWithKey } from "./api.js";
import { $, cell } from "./dom.js";
import { guarded, showError } from "./messages.js";
import { nameNode } from "./text.js";

const live = { abort: null, generation: 0 };

function eventFilters() {
  const query = new URLSearchParams();
  for (const [key, id] of [
    ["stream", "events-stream"],
    ["person", "events-person"],
    ["kind", "events-kind"],
  ]) {
    const value = $(id).value.trim();
    if (value) query.set(key, value);
  }
  return query;
}

function eventRow(event) {
  const row = document.createElement("tr");
  row.className = "event";
  row.dataset.kind = event.kind;
  const when = new Date(event.time);
  const name =
    event.kind === "renamed"
      ? [nameNode(event.previous), " → ", nameNode(event.name)]
      : [nameNode(event.name)];
  const cells = [
    ["Time", when.toLocaleString()],
    ["Stream", event.stream],
    ["Event", event.kind],
    ["Name", ...name],
    ["Distance", event.distance === null ? "—" : event.distance.toFixed(3)],
    ["Stayed", event.duration_s === null ? "" : `${event.duration_s} s`],
  ];
  // On a phone the rows are laid out as blocks, each cell with its heading beside it; the
  // roles keep them a table for screen readers, which a CSS display change may drop.
  row.setAttribute("role", "row");
  for (const [label, ...content] of cells) {
    const td = cell(row, ...content);
    td.dataset.label = label;
    td.setAttribute("role", "cell");
  }
  if (event.crop) {
    // The face, when the server puts crops in events (FACELENS_EVENT_CROPS); the name is
    // beside it, so the picture needs no text of its own.
    const face = document.createElement("img");
    face.className = "event-crop";
    face.src = `data:image/jpeg;base64,${event.crop}`;
    face.alt = "";
    row.cells[3].prepend(face);
  }
  return row;
}

export async function showEvents() {
  stopEvents();
  // Only the newest call shows its page and follows: an earlier one still under way (the
  // tab opened, then the filters applied) must not bring back rows of other filters.
  const generation = ++live.generation;
  await guarded(async () => {
    const query = eventFilters();
    query.set("newest", "true");
    query.set("limit", "200");
    const page = await api("GET", "/v1/events?" + query);
    if (generation !== live.generation) return;
    $("events-rows").replaceChildren(...page.events.reverse().map(eventRow));
    showNoEvents();
    follow(page.last);
  });
}

async function follow(after) {
  // Server-sent events read with fetch, not EventSource: EventSource cannot send the API key.
  const controller = new AbortController();
  live.abort = controller;
  const query = eventFilters();
  if (after !== null) query.set("after", String(after));
  try {
    const response = await fetchWithKey("/v1/events/stream?" + query, {
      signal: controller.signal,
    });
    if (!response.ok) throw await errorOf(response);
    $("events-live").textContent = "Live: new events appear at the top.";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      if (live.abort !== controller) return; // stopped: what was under way is not shown
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").find((line) => line.startsWith("data: "));
        if (data) $("events-rows").prepend(eventRow(JSON.parse(data.slice(6))));
      }
      showNoEvents();
    }
    $("events-live").textContent = "The live stream ended; reopen the tab to follow again.";
  } catch (error) {
    if (error.name === "AbortError") return;
    $("events-live").textContent = "";
    showError("Events: " + error.message);
  }
}

function showNoEvents() {
  const empty = $("events-empty");
  empty.hidden = $("events-rows").rows.length > 0;
  empty.textContent = [...eventFilters().keys()].length
    ? "No events match these filters."
    : "No events yet. They appear here as a stream (see Streams) or facelens watch on this " +
      "server's data directory sees faces come and go.";
}

export function stopEvents() {
  if (live.abort) live.abort.abort();
  live.abort = null;
  live.generation += 1;
  $("events-live").textContent = "";
}
