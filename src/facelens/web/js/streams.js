// The Streams tab: the cameras and videos the server watches, each with its newest annotated
// frame and status, refreshed every second while the tab is open.

import { api } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { $, button } from "./dom.js";
import { act, guarded } from "./messages.js";
import { counted, listed } from "./text.js";

const watching = { timer: null, views: new Map() };

/** A stream's status in a line: its state once (the source's detail often repeats it:
 * "ended", "retrying in 8 s: …"), and while it runs the rate frames are processed at (the
 * status's fps, not the source's own rate); once it stopped, how many were; and which server
 * runs it, when several share the streams. */
function streamStatus(status) {
  const { state, detail } = status;
  const parts = [];
  if (!detail || detail === state) parts.push(state);
  else if (detail.startsWith(state)) parts.push(detail);
  else parts.push(`${state}: ${detail}`);
  const running = state === "running";
  if (running && typeof status.fps === "number") {
    parts.push(`processing ${status.fps.toFixed(1)} frames/s`);
  } else if (!running && status.frames_processed) {
    parts.push(`${counted(status.frames_processed, "frame")} processed`);
  }
  if (status.frames_dropped) parts.push(`${counted(status.frames_dropped, "frame")} dropped`);
  if (status.reconnects) parts.push(counted(status.reconnects, "reconnect"));
  // Servers sharing a database: which one runs the stream (its live view is there).
  if (status.owner) parts.push(`on ${status.owner}`);
  const nodes = [parts.join(" · ")];
  if (running && status.in_view && status.in_view.length) {
    nodes.push(" · in view: ", ...listed(status.in_view));
  }
  return nodes;
}

function streamItem(stream) {
  const item = document.createElement("li");
  item.className = "stream";
  item.dataset.id = stream.id;
  const view = document.createElement("img");
  view.alt = `Live view of ${stream.id}, faces boxed and named`;
  watching.views.set(stream.id, view);
  const about = document.createElement("div");
  about.className = "about";
  const title = document.createElement("strong");
  title.textContent = stream.id;
  const source = document.createElement("div");
  source.textContent = stream.source;
  const status = document.createElement("div");
  status.className = "status";
  status.append(...streamStatus(stream.status));
  about.append(title, source, status);
  const remove = button(
    "Remove",
    async () => {
      if (!(await confirmAction(`Stop watching ${stream.id}? Its events stay.`, "Remove"))) return;
      await act(async () => {
        await api("DELETE", "/v1/streams/" + encodeURIComponent(stream.id));
        await showStreams();
      });
    },
    "danger",
  );
  item.append(view, about, remove);
  return item;
}

async function refreshStreams() {
  const answer = await api("GET", "/v1/streams");
  for (const stream of answer.streams) {
    const item = document.querySelector(`li.stream[data-id="${CSS.escape(stream.id)}"]`);
    if (item) item.querySelector(".status").replaceChildren(...streamStatus(stream.status));
  }
  // The newest annotated frame of each: fetched with the key (an <img> could not send it).
  for (const [id, view] of watching.views) {
    try {
      const blob = await api("GET", `/v1/streams/${encodeURIComponent(id)}/snapshot.jpg`, {
        blob: true,
      });
      const old = view.src;
      view.src = URL.createObjectURL(blob);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    } catch {
      // no frame yet
    }
  }
}

export async function showStreams() {
  stopStreams();
  await guarded(async () => {
    const answer = await api("GET", "/v1/streams");
    $("stream-list").replaceChildren(...answer.streams.map(streamItem));
    $("streams-empty").hidden = answer.streams.length > 0;
    await refreshStreams();
    watching.timer = setInterval(() => refreshStreams().catch(() => {}), 1000);
  });
}

export function stopStreams() {
  if (watching.timer) clearInterval(watching.timer);
  watching.timer = null;
  watching.views.clear();
}

export async function addStream(event) {
  event.preventDefault();
  const fps = $("stream-fps").value;
  const body = { id: $("stream-id").value.trim(), source: $("stream-source").value.trim() };
  if (fps) body.fps = Number(fps);
  await act(async () => {
    await api("POST", "/v1/streams", { json: body });
    $("add-stream").reset();
    await showStreams();
  });
}
