// The facelens web console: plain JavaScript over the server's /v1 API, no build step, no CDN.
// Names and messages are always inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "facelens-api-key";

// ---------------------------------------------------------------------------------- messages

function showError(text) {
  const line = document.createElement("p");
  const words = document.createElement("span");
  words.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "secondary";
  close.textContent = "Dismiss";
  close.addEventListener("click", () => line.remove());
  line.append(words, close);
  $("messages").append(line);
}

function clearErrors() {
  $("messages").replaceChildren();
}

// --------------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const PLAIN = {
  0: "The server cannot be reached. Is facelens running?",
  401: "The server needs a valid API key.",
  413: "The photo is too large for this server.",
  429: "Too many requests; wait a moment and try again.",
  503: "The server is busy or starting; try again in a few seconds.",
};

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = PLAIN[response.status] || `The server answered ${response.status}.`;
  try {
    const body = await response.json();
    const detail = body.error || body;
    if (detail.message) message = detail.message;
    if (detail.code) code = detail.code;
  } catch {
    // not JSON: keep the plain words
  }
  return new ApiError(response.status, code, message);
}

async function api(method, path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set("X-API-Key", key);
    let body = options.body;
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch {
      throw new ApiError(0, "unreachable", PLAIN[0]);
    }
    if (response.status === 401 && attempt === 0 && (await askForKey(true))) continue;
    if (!response.ok) throw await errorOf(response);
    return options.blob ? response.blob() : response.json();
  }
}

const person = (name) => "/v1/people/" + encodeURIComponent(name);

function imageBody(file) {
  return { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } };
}

// ------------------------------------------------------------------------------- dialogs

let keyQuestion = null;

function askForKey(required) {
  if (keyQuestion) return keyQuestion;
  const dialog = $("key-dialog");
  $("key-input").value = sessionStorage.getItem(KEY) || "";
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
      },
      { once: true },
    );
  });
  dialog.returnValue = "";
  dialog.showModal();
  return keyQuestion;
}

function answered(dialog, read) {
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(read(dialog.returnValue)), { once: true }),
  );
}

function confirmAction(text, action) {
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = action;
  return answered($("confirm-dialog"), (value) => value === "yes");
}

function askText(question, value) {
  $("prompt-text").textContent = question;
  $("prompt-input").value = value;
  return answered($("prompt-dialog"), (choice) =>
    choice === "ok" ? $("prompt-input").value.trim() : null,
  );
}

// ---------------------------------------------------------------------------------- tabs

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  const panel = tab.getAttribute("aria-controls");
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

// ----------------------------------------------------------------------------- drawing

function addBoxes(stage, faces, width, height) {
  for (const face of faces) {
    const box = document.createElement("div");
    box.className = face.name === "unknown" ? "box unknown" : "box";
    box.style.left = (100 * face.box.left) / width + "%";
    box.style.top = (100 * face.box.top) / height + "%";
    box.style.width = (100 * (face.box.right - face.box.left)) / width + "%";
    box.style.height = (100 * (face.box.bottom - face.box.top)) / height + "%";
    const label = document.createElement("span");
    label.textContent = face.name;
    box.append(label);
    stage.append(box);
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

function facesTable(faces) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const title of ["Name", "Confidence", "Distance"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    head.append(th);
  }
  const body = table.createTBody();
  for (const face of faces) {
    const row = body.insertRow();
    row.className = "face";
    cell(row, face.name);
    cell(row, Math.round(face.confidence * 100) + "%");
    cell(row, face.distance === null ? "—" : face.distance.toFixed(3));
  }
  return table;
}

// --------------------------------------------------------------------------- recognise

async function recognizeOne(file) {
  const card = document.createElement("article");
  card.className = "result";
  const title = document.createElement("h3");
  title.textContent = file.name || "pasted image";
  const stage = document.createElement("div");
  stage.className = "stage";
  const image = document.createElement("img");
  image.alt = "The photo " + title.textContent;
  image.src = URL.createObjectURL(file);
  stage.append(image);
  const status = document.createElement("p");
  status.textContent = "Recognising…";
  card.append(title, stage, status);
  $("results").prepend(card);
  try {
    const answer = await api("POST", "/v1/recognize", imageBody(file));
    addBoxes(stage, answer.faces, answer.width, answer.height);
    const n = answer.faces.length;
    status.textContent = n === 0 ? "No face found." : n === 1 ? "1 face:" : n + " faces:";
    if (n) card.append(facesTable(answer.faces));
    card.dataset.state = "done";
  } catch (error) {
    stage.remove();
    status.className = "error";
    status.textContent = error.message;
    card.dataset.state = "error";
    showError(`${title.textContent}: ${error.message}`);
  }
}

async function recognizeFiles(files) {
  clearErrors();
  const queue = [...files];
  const lane = async () => {
    while (queue.length) await recognizeOne(queue.shift());
  };
  await Promise.all([lane(), lane()]); // two at a time: the server has a worker per core
}

function setUpRecognize() {
  const input = $("recognize-files");
  input.addEventListener("change", () => {
    recognizeFiles(input.files);
    input.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    recognizeFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    if ($("recognize").hidden) return;
    const files = [...event.clipboardData.files].filter((f) => f.type.startsWith("image/"));
    if (files.length) recognizeFiles(files);
  });
}

// ------------------------------------------------------------------------------ camera

const camera = { stream: null, running: false, faces: [], scale: 1, done: [] };

function drawCamera() {
  if (!camera.running) return;
  const video = $("camera-video");
  const canvas = $("camera-canvas");
  const context = canvas.getContext("2d");
  if (video.videoWidth) {
    if (canvas.width !== video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    context.drawImage(video, 0, 0);
    context.lineWidth = Math.max(2, canvas.width / 200);
    context.font = `${Math.max(14, canvas.width / 40)}px system-ui, sans-serif`;
    for (const face of camera.faces) {
      const b = face.box;
      const s = camera.scale;
      const colour = face.name === "unknown" ? "#c62828" : "#1a7f37";
      context.strokeStyle = colour;
      context.strokeRect(b.left * s, b.top * s, (b.right - b.left) * s, (b.bottom - b.top) * s);
      const label = face.name;
      const w = context.measureText(label).width + 8;
      const h = Math.max(14, canvas.width / 40) + 6;
      context.fillStyle = colour;
      context.fillRect(b.left * s, b.bottom * s, w, h);
      context.fillStyle = "#fff";
      context.fillText(label, b.left * s + 4, b.bottom * s + h - 6);
    }
  }
  requestAnimationFrame(drawCamera);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sendFrames() {
  const video = $("camera-video");
  const grab = document.createElement("canvas");
  while (camera.running) {
    const started = performance.now();
    if (video.videoWidth) {
      const scale = Math.min(1, 640 / video.videoWidth); // a 640 px copy is enough to detect
      grab.width = Math.round(video.videoWidth * scale);
      grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      const frame = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
      try {
        const answer = await api("POST", "/v1/recognize", imageBody(frame));
        if (!camera.running) break;
        camera.faces = answer.faces;
        camera.scale = 1 / scale;
        const names = answer.faces.map((f) => f.name);
        const shown = $("camera-faces");
        shown.dataset.faces = String(names.length);
        shown.textContent = names.length
          ? `${names.length} in view: ${names.join(", ")}`
          : "No face in view.";
        const now = performance.now();
        camera.done = camera.done.filter((t) => now - t < 3000).concat(now);
        const span = camera.done.length > 1 ? (now - camera.done[0]) / 1000 : 0;
        $("camera-fps").value = (span ? (camera.done.length - 1) / span : 0).toFixed(1) + " fps";
      } catch (error) {
        if (error.status === 503 || error.status === 429) {
          // Busy: this frame is dropped and the next one goes at the usual time.
          $("camera-faces").textContent = "The server is busy; frames are being dropped.";
        } else {
          showError("Camera: " + error.message);
          stopCamera();
          break;
        }
      }
    }
    const rate = Number($("camera-rate").value);
    const wait = 1000 / rate - (performance.now() - started);
    await sleep(Math.max(wait, 0));
  }
}

async function startCamera() {
  clearErrors();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This browser cannot use a camera here (it needs https or localhost).");
    return;
  }
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 } },
      audio: false,
    });
  } catch (error) {
    showError("The camera could not be started: " + error.message);
    return;
  }
  const video = $("camera-video");
  video.srcObject = camera.stream;
  await video.play();
  camera.running = true;
  camera.done = [];
  $("camera-start").disabled = true;
  $("camera-stop").disabled = false;
  $("camera").dataset.state = "running";
  requestAnimationFrame(drawCamera);
  sendFrames();
}

function stopCamera() {
  camera.running = false;
  if (camera.stream) {
    for (const track of camera.stream.getTracks()) track.stop();
    camera.stream = null;
  }
  $("camera-video").srcObject = null;
  camera.faces = [];
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  $("camera-fps").value = "0.0 fps";
  $("camera").dataset.state = "stopped";
}

// ------------------------------------------------------------------------------ people

let everyone = [];
const thumbnails = new Map(); // URL → object URL promise (or null: none kept)

function initials(name) {
  const span = document.createElement("span");
  span.className = "avatar";
  span.setAttribute("aria-hidden", "true");
  span.textContent = name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((word) => [...word][0].toUpperCase())
    .join("");
  return span;
}

function thumbnail(url, name, alt) {
  const holder = initials(name);
  if (!thumbnails.has(url)) {
    thumbnails.set(
      url,
      api("GET", url, { blob: true }).then(
        (blob) => URL.createObjectURL(blob),
        () => null, // none kept (thumbnails off, or enrolled before): initials stay
      ),
    );
  }
  thumbnails.get(url).then((src) => {
    if (!src) return;
    const image = document.createElement("img");
    image.className = holder.className;
    image.src = src;
    image.alt = alt;
    holder.replaceWith(image);
  });
  return holder;
}

function forgetThumbnails() {
  for (const pending of thumbnails.values()) pending.then((src) => src && URL.revokeObjectURL(src));
  thumbnails.clear();
}

function button(text, onClick, className = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

async function guarded(work) {
  try {
    await work();
  } catch (error) {
    showError(error.message);
  }
}

async function loadPeople() {
  await guarded(async () => {
    const all = [];
    let offset = 0;
    do {
      const page = await api("GET", `/v1/people?limit=1000&offset=${offset}`);
      all.push(...page.people);
      offset = page.next_offset;
    } while (offset !== null);
    everyone = all;
    renderPeople();
  });
}

function renderPeople() {
  const query = $("people-search").value.trim().toLocaleLowerCase();
  const shown = everyone.filter((p) => p.name.toLocaleLowerCase().includes(query));
  $("people-count").textContent = `${shown.length} of ${everyone.length} people`;
  $("people-list").replaceChildren(...shown.map(personItem));
}

function personItem(p) {
  const item = document.createElement("li");
  item.className = "person";
  item.dataset.name = p.name;
  const who = document.createElement("div");
  who.className = "who";
  const name = document.createElement("strong");
  name.textContent = p.name;
  const count = document.createElement("div");
  count.textContent = p.face_count === 1 ? "1 face" : `${p.face_count} faces`;
  who.append(name, count);
  const picker = document.createElement("input");
  picker.type = "file";
  picker.accept = "image/*";
  picker.multiple = true;
  picker.hidden = true;
  picker.setAttribute("aria-label", `Photos to add to ${p.name}`);
  const outcomes = document.createElement("ul");
  outcomes.className = "outcomes";
  showOutcomes(outcomes, added.get(p.name) || []);
  picker.addEventListener("change", () =>
    guarded(async () => {
      const answer = await enrol(p.name, picker.files, outcomes);
      added.set(p.name, answer.results); // still shown once the list is drawn again
      picker.value = "";
      await loadPeople();
    }),
  );
  const faces = document.createElement("ul");
  faces.className = "faces";
  faces.hidden = true;
  const show = button("Faces", () => toggleFaces(p.name, faces, show));
  show.setAttribute("aria-expanded", "false");
  const face = p.thumbnail_face_id;
  item.append(
    face === null
      ? initials(p.name)
      : thumbnail(`${person(p.name)}/faces/${face}/thumbnail`, p.name, p.name),
    who,
    show,
    button("Add photos", () => picker.click()),
    button("Rename", () => rename(p.name)),
    button("Delete", () => remove(p), "danger"),
    picker,
    outcomes,
    faces,
  );
  return item;
}

async function toggleFaces(name, list, toggle) {
  const open = list.hidden;
  list.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  if (!open) return;
  await guarded(async () => {
    const detail = await api("GET", person(name));
    list.replaceChildren(
      ...detail.faces.map((face) => {
        const li = document.createElement("li");
        const url = `${person(name)}/faces/${face.id}/thumbnail`;
        const label = document.createElement("span");
        label.textContent = `#${face.id}`;
        li.append(
          face.thumbnail ? thumbnail(url, name, `Face ${face.id} of ${name}`) : initials(name),
          label,
          button("Remove", () => removeFace(name, face.id), "danger"),
        );
        return li;
      }),
    );
  });
}

async function removeFace(name, id) {
  if (!(await confirmAction(`Remove face #${id} of ${name}?`, "Remove"))) return;
  await guarded(async () => {
    await api("DELETE", `${person(name)}/faces/${id}`);
    forgetThumbnails();
    await loadPeople();
  });
}

const added = new Map(); // person → what their last "Add photos" did, per photo

function showOutcomes(list, results) {
  list.replaceChildren(
    ...results.map((result) => {
      const li = document.createElement("li");
      li.className = result.status;
      const what = {
        enrolled: "enrolled",
        already_enrolled: "already enrolled",
        skipped: result.reason || "not enrolled",
      }[result.status];
      li.textContent = `${result.image}: ${what}`;
      return li;
    }),
  );
}

async function enrol(name, files, outcomes) {
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  outcomes.replaceChildren();
  const answer = await api("POST", person(name) + "/faces", { body: form });
  showOutcomes(outcomes, answer.results);
  forgetThumbnails();
  return answer;
}

async function addPerson(event) {
  event.preventDefault();
  clearErrors();
  const name = $("new-name").value.trim();
  const files = $("new-photos").files;
  await guarded(async () => {
    await api("POST", "/v1/people", { json: { name } });
    const answer = await enrol(name, files, $("add-results"));
    if (answer.enrolled === 0) showError(`No photo of ${name} could be enrolled; see why below.`);
    $("add-person").reset();
    await loadPeople();
  });
}

async function rename(name) {
  const wanted = await askText(`New name for ${name}:`, name);
  if (!wanted || wanted === name) return;
  await guarded(async () => {
    await api("PATCH", person(name), { json: { name: wanted } });
    forgetThumbnails();
    await loadPeople();
  });
}

async function remove(p) {
  const text = `Delete ${p.name} and their ${p.face_count} stored faces? This cannot be undone.`;
  if (!(await confirmAction(text, "Delete"))) return;
  await guarded(async () => {
    await api("DELETE", person(p.name));
    forgetThumbnails();
    await loadPeople();
  });
}

// ------------------------------------------------------------------------------ review

async function runReview() {
  clearErrors();
  await guarded(async () => {
    $("review-summary").textContent = "Checking…";
    const answer = await api("GET", "/v1/gallery/review");
    const n = answer.findings.length;
    $("review-summary").textContent =
      `${answer.faces_reviewed} faces checked: ` +
      (n === 0 ? "nothing to fix." : n === 1 ? "1 thing to look at." : `${n} things to look at.`);
    $("review-list").replaceChildren(...answer.findings.map(findingItem));
  });
}

function findingItem(f) {
  const item = document.createElement("li");
  item.className = "finding";
  item.dataset.kind = f.kind;
  const what = document.createElement("div");
  what.className = "what";
  const title = document.createElement("strong");
  title.textContent = `${f.person}, face #${f.face_id}: ${f.kind}`;
  const message = document.createElement("div");
  message.textContent = f.message;
  what.append(title, message);
  item.append(figure(f.person, f.face_id, "this face"));
  if (f.other_face_id !== null && f.other_person !== null) {
    item.append(figure(f.other_person, f.other_face_id, `nearest: ${f.other_person}`));
  }
  item.append(what);
  if (f.fix === "move") {
    item.append(
      button(
        `Move to ${f.other_person}`,
        () =>
          fix(() =>
            api("PATCH", `${person(f.person)}/faces/${f.face_id}`, {
              json: { to: f.other_person },
            }),
          ),
        "",
      ),
    );
  }
  item.append(
    button(
      "Remove photo",
      () => fix(() => api("DELETE", `${person(f.person)}/faces/${f.face_id}`)),
      "danger",
    ),
  );
  return item;
}

function figure(name, id, caption) {
  const shown = document.createElement("figure");
  const words = document.createElement("figcaption");
  words.textContent = caption;
  shown.append(
    thumbnail(`${person(name)}/faces/${id}/thumbnail`, name, `Face ${id} of ${name}`),
    words,
  );
  return shown;
}

async function fix(change) {
  await guarded(async () => {
    await change();
    forgetThumbnails();
    await runReview();
  });
}

// ------------------------------------------------------------------------------ verify

async function verify(event) {
  event.preventDefault();
  clearErrors();
  const form = new FormData();
  form.append("first", $("verify-first").files[0]);
  form.append("second", $("verify-second").files[0]);
  const out = $("verify-result");
  out.textContent = "Comparing…";
  try {
    const answer = await api("POST", "/v1/verify", { body: form });
    const verdict = document.createElement("p");
    verdict.className = "verdict " + (answer.same_person ? "same" : "different");
    verdict.textContent = answer.same_person ? "The same person" : "Different people";
    const detail = document.createElement("p");
    detail.textContent = `Distance ${answer.distance.toFixed(3)}; the same person at most ${answer.threshold}.`;
    out.replaceChildren(verdict, detail);
    for (const note of answer.notes) {
      const p = document.createElement("p");
      p.textContent = note;
      out.append(p);
    }
  } catch (error) {
    out.textContent = "";
    showError(error.message);
  }
}

// ----------------------------------------------------------------------------- streams

const watching = { timer: null, views: new Map() };

function streamStatus(status) {
  const parts = [status.state];
  if (status.detail) parts.push(status.detail);
  if (status.fps !== undefined) parts.push(`${status.fps} fps`);
  if (status.frames_dropped) parts.push(`${status.frames_dropped} frames dropped`);
  if (status.reconnects) parts.push(`${status.reconnects} reconnects`);
  if (status.in_view && status.in_view.length) parts.push("in view: " + status.in_view.join(", "));
  return parts.join(" · ");
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
  status.textContent = streamStatus(stream.status);
  about.append(title, source, status);
  const remove = button(
    "Remove",
    async () => {
      if (!(await confirmAction(`Stop watching ${stream.id}? Its events stay.`, "Remove"))) return;
      await guarded(async () => {
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
    if (item) item.querySelector(".status").textContent = streamStatus(stream.status);
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

async function showStreams() {
  stopStreams();
  await guarded(async () => {
    const answer = await api("GET", "/v1/streams");
    $("stream-list").replaceChildren(...answer.streams.map(streamItem));
    await refreshStreams();
    watching.timer = setInterval(() => refreshStreams().catch(() => {}), 1000);
  });
}

function stopStreams() {
  if (watching.timer) clearInterval(watching.timer);
  watching.timer = null;
  watching.views.clear();
}

async function addStream(event) {
  event.preventDefault();
  clearErrors();
  const fps = $("stream-fps").value;
  const body = { id: $("stream-id").value.trim(), source: $("stream-source").value.trim() };
  if (fps) body.fps = Number(fps);
  await guarded(async () => {
    await api("POST", "/v1/streams", { json: body });
    $("add-stream").reset();
    await showStreams();
  });
}

// ------------------------------------------------------------------------------ events

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
  const name = event.kind === "renamed" ? `${event.previous} → ${event.name}` : event.name;
  for (const text of [
    when.toLocaleString(),
    event.stream,
    event.kind,
    name,
    event.distance === null ? "—" : event.distance.toFixed(3),
    event.duration_s === null ? "" : `${event.duration_s} s`,
  ]) {
    cell(row, text);
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

async function showEvents() {
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
    follow(page.last);
  });
}

async function follow(after) {
  // Server-sent events read with fetch, not EventSource: EventSource cannot send the API key.
  const controller = new AbortController();
  live.abort = controller;
  const query = eventFilters();
  if (after !== null) query.set("after", String(after));
  const headers = new Headers();
  const key = sessionStorage.getItem(KEY);
  if (key) headers.set("X-API-Key", key);
  try {
    const response = await fetch("/v1/events/stream?" + query, {
      headers,
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
    }
    $("events-live").textContent = "The live stream ended; reopen the tab to follow again.";
  } catch (error) {
    if (error.name === "AbortError") return;
    $("events-live").textContent = "";
    showError("Events: " + error.message);
  }
}

function stopEvents() {
  if (live.abort) live.abort.abort();
  live.abort = null;
  live.generation += 1;
  $("events-live").textContent = "";
}

// ------------------------------------------------------------------------------ start

async function showStatus() {
  try {
    const response = await fetch("/readyz");
    const ready = await response.json();
    $("server-status").textContent = response.ok
      ? `Ready · model ${ready.profile} · threshold ${ready.threshold} · ${ready.people} people`
      : "Not ready: " + ready.problems.join("; ");
  } catch {
    $("server-status").textContent = PLAIN[0];
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  setUpRecognize();
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("add-person").addEventListener("submit", addPerson);
  $("people-search").addEventListener("input", renderPeople);
  $("review-run").addEventListener("click", runReview);
  $("verify-form").addEventListener("submit", verify);
  $("add-stream").addEventListener("submit", addStream);
  $("events-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    showEvents();
  });
  $("key-button").addEventListener("click", () => askForKey(false));
  showStatus();
});
