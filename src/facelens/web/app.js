// The facelens web console: plain JavaScript over the server's /v1 API, no build step, no CDN.
// Names and messages are always inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "facelens-api-key";

// ------------------------------------------------------------------------------------- names

// Whitespace that HTML hides: a run of spaces shows as one, a space at either end or a tab or
// no-break space not at all. So that "Tom  Cruise" and "Tom Cruise" (two people) do not look
// alike, each such character is shown as ␣, read out as "2 spaces".
const HIDDEN_SPACE = /^\s+|\s+$|\s{2,}|[^\S ]+/gu;
const INNER_HIDDEN_SPACE = /\s{2,}|[^\S ]+/gu; // in a sentence: only what is inside it

function spacesLabel(run) {
  const n = [...run].length;
  const plain = /^ +$/.test(run);
  return plain ? (n === 1 ? "1 space" : `${n} spaces`) : `${n} blank character${n > 1 ? "s" : ""}`;
}

function withSpacesShown(text, pattern) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    nodes.push(text.slice(at, match.index));
    const mark = document.createElement("span");
    mark.className = "spaces";
    mark.setAttribute("role", "img");
    mark.setAttribute("aria-label", spacesLabel(match[0]));
    mark.title = spacesLabel(match[0]);
    mark.textContent = "␣".repeat([...match[0]].length);
    nodes.push(mark);
    at = match.index + match[0].length;
  }
  nodes.push(text.slice(at));
  return nodes.filter((node) => node !== "");
}

/** A person's name as an element, hidden whitespace shown (see HIDDEN_SPACE). */
function nameNode(name) {
  const span = document.createElement("span");
  span.className = "name";
  span.append(...withSpacesShown(name, HIDDEN_SPACE));
  return span;
}

/** The same as plain text, where no element can go (a canvas, an <option>). */
function nameText(name) {
  return name.replace(HIDDEN_SPACE, (run) => "␣".repeat([...run].length));
}

/** Names, each shown as by nameNode, with commas between. */
function listed(names) {
  return names.flatMap((name, i) => (i ? [", ", nameNode(name)] : [nameNode(name)]));
}

/** Nodes for a sentence made of strings and name elements; a server's message may quote a
 * name, so runs of spaces inside strings are shown too. */
function sentence(...parts) {
  return parts.flatMap((part) =>
    typeof part === "string" ? withSpacesShown(part, INNER_HIDDEN_SPACE) : [part],
  );
}

// ---------------------------------------------------------------------------------- messages

function showError(...parts) {
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
        showStatus(); // the count of people is shown to key holders only
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
  $("confirm-text").replaceChildren(...sentence(...[text].flat()));
  $("confirm-yes").textContent = action;
  return answered($("confirm-dialog"), (value) => value === "yes");
}

function askText(question, value) {
  $("prompt-text").replaceChildren(...sentence(...[question].flat()));
  $("prompt-input").value = value;
  return answered($("prompt-dialog"), (choice) =>
    choice === "ok" ? $("prompt-input").value.trim() : null,
  );
}

// ---------------------------------------------------------------------------------- tabs

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
    label.append(nameNode(face.name));
    box.append(label);
    stage.append(box);
  }
}

function cell(row, ...content) {
  const td = document.createElement("td");
  td.append(...content);
  row.append(td);
  return td;
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
    cell(row, nameNode(face.name));
    // No distance: nobody to compare with, so no confidence either (not "unknown 100%").
    cell(row, face.distance === null ? "—" : Math.round(face.confidence * 100) + "%");
    cell(row, face.distance === null ? "—" : face.distance.toFixed(3));
  }
  return table;
}

// ------------------------------------------------------------------------------- files

// HEIC (HEIF with HEVC), an iPhone's usual format: an ISO media file whose first box is 'ftyp'
// with one of these brands. facelens cannot read it; the user can do something about it.
const HEIC_BRANDS = new Set(
  ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "msf1"],
);
const HEIC_HINT =
  "It is a HEIC photo (an iPhone's usual format): convert it to JPEG, or set the iPhone to " +
  "take JPEGs (Settings › Camera › Formats › Most Compatible).";

async function isHeic(file) {
  if (/\.hei[cf]$/i.test(file.name || "") || /^image\/hei[cf]/i.test(file.type)) return true;
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const text = String.fromCharCode(...head);
  return text.slice(4, 8) === "ftyp" && HEIC_BRANDS.has(text.slice(8, 12));
}

/** What the server said about a file, without the file name it starts with (it is shown
 * beside it); when it could not read the file (``unread``) and the file is a HEIC photo, what
 * to do about that. */
async function fileProblem(file, label, message, unread) {
  const prefix = label + ": ";
  const said = message.startsWith(prefix) ? message.slice(prefix.length) : message;
  return unread && (await isHeic(file)) ? `${said} ${HEIC_HINT}` : said;
}

/** One photo in a multipart form under its own name, as the People tab sends photos: the
 * server reads it whatever the browser thinks its type is, and its answers name the file. */
function photoForm(field, file, label) {
  const form = new FormData();
  form.append(field, file, label);
  return { body: form };
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
    const answer = await api("POST", "/v1/recognize", photoForm("image", file, title.textContent));
    addBoxes(stage, answer.faces, answer.width, answer.height);
    const n = answer.faces.length;
    status.textContent = n === 0 ? "No face found." : n === 1 ? "1 face:" : n + " faces:";
    if (n) card.append(facesTable(answer.faces));
    if (answer.faces.some((face) => face.distance === null)) {
      const empty = document.createElement("p");
      empty.className = "hint";
      empty.textContent =
        "The gallery holds no faces yet, so no face can be named: add people with a few " +
        "photos each in the People tab.";
      card.append(empty);
    }
    card.dataset.state = "done";
  } catch (error) {
    stage.remove();
    const unread = error.code === "bad_image";
    const problem = await fileProblem(file, title.textContent, error.message, unread);
    status.className = "error";
    status.textContent = problem.charAt(0).toUpperCase() + problem.slice(1);
    card.dataset.state = "error";
    showError(`${title.textContent}: ${problem}`);
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
      const label = nameText(face.name);
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
        const seen = names.length ? [`${names.length} in view: `, ...listed(names)] : [];
        shown.replaceChildren(...(seen.length ? seen : ["No face in view."]));
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
  b.append(...[text].flat());
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

/** A user's action: the banners of earlier ones go, its own errors are shown, and the
 * header (ready, how many people) is brought up to date whatever happened. */
async function act(work) {
  clearErrors();
  $("people-status").textContent = "";
  await guarded(work);
  await showStatus();
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
  const typed = $("people-search").value.trim();
  const query = typed.toLocaleLowerCase();
  const shown = everyone.filter((p) => p.name.toLocaleLowerCase().includes(query));
  $("people-count").textContent = `${shown.length} of ${everyone.length} people`;
  $("people-list").replaceChildren(...shown.map(personItem));
  const empty = $("people-empty");
  empty.hidden = shown.length > 0;
  empty.textContent =
    everyone.length === 0
      ? "Nobody is enrolled yet. Add a person above with a few photos of their face; " +
        "then the Recognise and Camera tabs can name them."
      : `No one's name contains “${typed}”.`;
}

function personItem(p) {
  const item = document.createElement("li");
  item.className = "person";
  item.dataset.name = p.name;
  const who = document.createElement("div");
  who.className = "who";
  const name = document.createElement("strong");
  name.append(nameNode(p.name));
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
    act(async () => {
      const files = [...picker.files];
      picker.value = "";
      outcomes.replaceChildren();
      const results = await enrol(p.name, files);
      added.set(p.name, results); // still shown once the list is drawn again
      showOutcomes(outcomes, results);
      await loadPeople();
    }),
  );
  const faces = document.createElement("ul");
  faces.className = "faces";
  faces.hidden = true;
  const show = button("Faces", () => toggleFaces(p.name, faces, show));
  show.setAttribute("aria-expanded", "false");
  const face = p.thumbnail_face_id;
  const mergeInto = button("Merge into…", () => merge(p));
  mergeInto.hidden = everyone.length < 2; // nobody to merge into
  item.append(
    face === null
      ? initials(p.name)
      : thumbnail(`${person(p.name)}/faces/${face}/thumbnail`, p.name, p.name),
    who,
    show,
    button("Add photos", () => picker.click()),
    button("Rename", () => rename(p.name)),
    mergeInto,
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
  const question = [`Remove face #${id} of `, nameNode(name), "?"];
  if (!(await confirmAction(question, "Remove"))) return;
  await act(async () => {
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

/** Enrol each photo in a request of its own, two at a time (the server has a worker per
 * core): a photo the server refuses whole (too large, say) is then that photo's outcome,
 * and the others still count. The outcomes in the order of ``files``. */
async function enrol(name, files) {
  const results = new Array(files.length);
  let next = 0;
  const lane = async () => {
    while (next < files.length) {
      const i = next++;
      results[i] = await enrolOne(name, files[i]);
    }
  };
  await Promise.all([lane(), lane()]);
  forgetThumbnails();
  return results;
}

async function enrolOne(name, file) {
  const label = file.name || "pasted image";
  try {
    const answer = await api("POST", person(name) + "/faces", photoForm("images", file, label));
    const result = answer.results[0];
    if (result.status === "skipped" && result.reason) {
      // Skipped after analysis: no face, several, or not readable (a HEIC photo is never).
      result.reason = await fileProblem(file, result.image, result.reason, true);
    }
    return result;
  } catch (error) {
    const reason =
      error.code === "payload_too_large"
        ? `${(file.size / 1048576).toFixed(1)} MB is more than this server takes in one ` +
          "upload: send a smaller photo (or raise FACELENS_MAX_BODY_BYTES)."
        : await fileProblem(file, label, error.message, error.code === "bad_image");
    return { image: label, status: "skipped", face_ids: [], reason };
  }
}

const counted = (n, what) => (n === 1 ? `1 ${what}` : `${n} ${what}s`);

async function addPerson(event) {
  event.preventDefault();
  const name = $("new-name").value.trim();
  const files = [...$("new-photos").files];
  const outcomes = $("add-results");
  outcomes.replaceChildren();
  await act(async () => {
    const created = await api("POST", "/v1/people", { json: { name } });
    const results = await enrol(created.name, files);
    showOutcomes(outcomes, results);
    if (results.some((r) => r.status !== "skipped")) {
      $("add-person").reset();
    } else {
      $("new-photos").value = ""; // the name stays, for other photos
      await removeEmpty(created.name, files.length);
    }
    await loadPeople();
  });
}

/** The person was created for photos none of which could be enrolled: delete them again
 * (unless someone else enrolled a face meanwhile), and say so either way. */
async function removeEmpty(name, photos) {
  const why =
    photos === 1
      ? "the photo could not be enrolled (why is below)."
      : `none of the ${photos} photos could be enrolled (why is below each).`;
  try {
    const now = await api("GET", person(name));
    if (now.face_count === 0) {
      await api("DELETE", person(name));
      showError(nameNode(name), " was not added: ", why);
    } else {
      showError(nameNode(name), " was kept, as someone else enrolled a face meanwhile; ", why);
    }
  } catch (error) {
    showError(
      nameNode(name),
      " is kept with no faces: ",
      why,
      ` Deleting the empty person failed (${error.message}): add photos to them or delete `,
      "them in the list below.",
    );
  }
}

async function rename(name) {
  const wanted = await askText(["New name for ", nameNode(name), ":"], name);
  if (!wanted || wanted === name) return;
  await act(async () => {
    await api("PATCH", person(name), { json: { name: wanted } });
    forgetThumbnails();
    await loadPeople();
  });
}

async function merge(p) {
  const target = await chooseMergeTarget(p);
  if (target === null) return;
  await act(async () => {
    const answer = await api("POST", person(target.name) + "/merge", { json: { from: p.name } });
    const moved = typeof answer.faces_moved === "number" ? answer.faces_moved : p.face_count;
    forgetThumbnails();
    added.delete(p.name);
    await loadPeople();
    $("people-status").replaceChildren(
      ...sentence(
        nameNode(p.name),
        ` was merged into `,
        nameNode(target.name),
        `: ${counted(moved, "face")} moved.`,
      ),
    );
  });
}

/** Whom to merge ``p`` into, asked in one dialog that says what will happen; null: cancelled. */
function chooseMergeTarget(p) {
  const others = everyone.filter((other) => other.name !== p.name);
  const select = $("merge-target");
  select.replaceChildren(
    ...others.map((other) => {
      const option = document.createElement("option");
      option.value = other.name;
      option.textContent = `${nameText(other.name)} (${counted(other.face_count, "face")})`;
      return option;
    }),
  );
  $("merge-source").replaceChildren(nameNode(p.name));
  const explain = () => {
    const [from, into] = [nameNode(p.name), nameNode(others[select.selectedIndex].name)];
    const n = p.face_count;
    const what =
      n === 0
        ? [from, " has no faces: it is deleted, and ", into, " stays as it is."]
        : [
            n === 1 ? "The 1 face of " : `All ${n} faces of `,
            from,
            n === 1 ? " moves to " : " move to ",
            into,
            ", and ",
            nameNode(p.name),
            " is deleted.",
          ];
    $("merge-text").replaceChildren(...sentence(...what, " This cannot be undone."));
  };
  select.onchange = explain;
  explain();
  return answered($("merge-dialog"), (value) =>
    value === "merge" ? others[select.selectedIndex] : null,
  );
}

async function remove(p) {
  const text = [
    "Delete ",
    nameNode(p.name),
    ` and their ${counted(p.face_count, "stored face")}? This cannot be undone.`,
  ];
  if (!(await confirmAction(text, "Delete"))) return;
  await act(async () => {
    await api("DELETE", person(p.name));
    forgetThumbnails();
    await loadPeople();
  });
}

// ------------------------------------------------------------------------------ review

const runReview = () => act(review);

async function review() {
  $("review-status").textContent = "";
  $("review-summary").textContent = "Checking…";
  const answer = await api("GET", "/v1/gallery/review");
  const n = answer.findings.length;
  $("review-summary").textContent =
    answer.faces_reviewed === 0
      ? "The gallery holds no faces yet: add people with a few photos each in the People " +
        "tab, then check it."
      : `${answer.faces_reviewed} faces checked: ` +
        (n === 0 ? "nothing to fix." : n === 1 ? "1 thing to look at." : `${n} things to look at.`);
  $("review-list").replaceChildren(...answer.findings.map(findingItem));
}

// What a finding about one face is, in its title's words.
const FINDING_TITLES = {
  mismatch: "closer to someone else",
  duplicate: "the same photo twice",
  small: "too small to trust",
  blurry: "blurred",
};

function findingItem(f) {
  const item = document.createElement("li");
  item.className = "finding";
  item.dataset.kind = f.kind;
  const what = document.createElement("div");
  what.className = "what";
  const title = document.createElement("strong");
  title.append(...findingTitle(f));
  const message = document.createElement("div");
  message.append(...sentence(f.message));
  what.append(title, message);
  item.append(...findingFigures(f), what, ...findingFixes(f));
  return item;
}

function findingTitle(f) {
  const who = nameNode(f.person);
  if (f.kind === "same_person") {
    return [who, " and ", nameNode(f.other_person), ": one person under two names?"];
  }
  if (f.face_id === null) return [who, ": no faces"]; // empty: about the person
  return [who, `, face #${f.face_id}: ${FINDING_TITLES[f.kind] || f.kind}`];
}

function findingFigures(f) {
  if (f.face_id === null) return [initials(f.person)];
  if (f.kind === "same_person") {
    return [
      figure(f.person, f.face_id, nameNode(f.person)),
      figure(f.other_person, f.other_face_id, nameNode(f.other_person)),
    ];
  }
  const shown = [figure(f.person, f.face_id, "this face")];
  if (f.other_face_id !== null && f.other_person !== null) {
    const caption =
      f.kind === "duplicate"
        ? `the same as #${f.other_face_id}`
        : ["nearest: ", nameNode(f.other_person)];
    shown.push(figure(f.other_person, f.other_face_id, caption));
  }
  return shown;
}

/** The buttons that apply a finding's fix (see FindingOut.fix in the API). */
function findingFixes(f) {
  const face = `${person(f.person)}/faces/${f.face_id}`;
  const removePhoto = () =>
    button("Remove photo", () => fix(() => api("DELETE", face)), "danger");
  switch (f.fix) {
    case "move": {
      const move = () => fix(() => api("PATCH", face, { json: { to: f.other_person } }));
      return [button(["Move to ", nameNode(f.other_person)], move, ""), removePhoto()];
    }
    case "merge":
      return [button(["Merge into ", nameNode(f.other_person)], () => mergeFinding(f), "")];
    case "remove_person":
      return [button(["Delete ", nameNode(f.person)], () => deleteEmpty(f), "danger")];
    default:
      return f.face_id === null ? [] : [removePhoto()];
  }
}

/** Merge ``f.person`` into ``f.other_person``, after a confirmation naming both. */
async function mergeFinding(f) {
  const [from, into] = [f.person, f.other_person];
  const question = [
    "Merge ",
    nameNode(from),
    " into ",
    nameNode(into),
    "? Every face of ",
    nameNode(from),
    " moves to ",
    nameNode(into),
    ", and ",
    nameNode(from),
    " is deleted. This cannot be undone.",
  ];
  if (!(await confirmAction(question, "Merge"))) return;
  await fix(
    () => api("POST", person(into) + "/merge", { json: { from } }),
    (answer) => [
      nameNode(from),
      " was merged into ",
      nameNode(into),
      typeof answer.faces_moved === "number"
        ? `: ${counted(answer.faces_moved, "face")} moved.`
        : ".",
    ],
  );
}

/** Delete a person with no face, unless someone enrolled one since the check. */
async function deleteEmpty(f) {
  await fix(
    async () => {
      const now = await api("GET", person(f.person));
      if (now.face_count > 0) {
        const faces = counted(now.face_count, "face");
        showError(nameNode(f.person), ` has ${faces} now, so was not deleted.`);
        return false;
      }
      await api("DELETE", person(f.person));
      return true;
    },
    (deleted) => (deleted ? [nameNode(f.person), " was deleted."] : []),
  );
}

function figure(name, id, caption) {
  const shown = document.createElement("figure");
  const words = document.createElement("figcaption");
  words.append(...[caption].flat());
  shown.append(
    thumbnail(`${person(name)}/faces/${id}/thumbnail`, name, `Face ${id} of ${name}`),
    words,
  );
  return shown;
}

/** Apply a fix, then check the gallery again; ``said``: what was done, from the answer. */
async function fix(change, said = null) {
  await act(async () => {
    const answer = await change();
    forgetThumbnails();
    await review();
    if (said) $("review-status").replaceChildren(...sentence(...said(answer)));
  });
}

// ----------------------------------------------------------------------------- streams

const watching = { timer: null, views: new Map() };

/** A stream's status in a line: its state once (the source's detail often repeats it:
 * "ended", "retrying in 8 s: …"), and while it runs the rate frames are processed at (the
 * status's fps, not the source's own rate); once it stopped, how many were. */
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

async function showStreams() {
  stopStreams();
  await guarded(async () => {
    const answer = await api("GET", "/v1/streams");
    $("stream-list").replaceChildren(...answer.streams.map(streamItem));
    $("streams-empty").hidden = answer.streams.length > 0;
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
  const fps = $("stream-fps").value;
  const body = { id: $("stream-id").value.trim(), source: $("stream-source").value.trim() };
  if (fps) body.fps = Number(fps);
  await act(async () => {
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

function stopEvents() {
  if (live.abort) live.abort.abort();
  live.abort = null;
  live.generation += 1;
  $("events-live").textContent = "";
}

// ------------------------------------------------------------------------------ start

async function showStatus() {
  try {
    // With keys on, the server tells how many people only to a key holder (else null).
    const key = sessionStorage.getItem(KEY);
    const response = await fetch("/readyz", key ? { headers: { "X-API-Key": key } } : {});
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

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  setUpRecognize();
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
  showStatus();
});
