// The Verify tab: both photos shown with every face boxed and the compared ones marked; picking
// another face (a click, or Tab to it and Enter) compares that one instead, through
// POST /v1/verify?first_face=&second_face= (indexes into each answer's images[i].faces).

import { api } from "./api.js";
import { $ } from "./dom.js";
import { clearErrors, showError } from "./messages.js";

const WHICH = ["first", "second"];
const verifying = {
  files: [],
  urls: [],
  choice: [null, null], // the face asked for in each photo; null: the server's (the largest)
  generation: 0, // only the newest comparison is shown
  refocus: null, // the photo whose face was just picked by keyboard or click: focus follows
};

function verifyPhotos(event) {
  event.preventDefault();
  clearErrors();
  for (const url of verifying.urls) URL.revokeObjectURL(url);
  verifying.files = [$("verify-first").files[0], $("verify-second").files[0]];
  verifying.urls = verifying.files.map((file) => URL.createObjectURL(file));
  verifying.choice = [null, null];
  verifying.refocus = null;
  $("verify-photos").replaceChildren(...verifying.files.map(photoFigure));
  compare();
}

function photoFigure(file, i) {
  const figure = document.createElement("figure");
  figure.dataset.photo = WHICH[i];
  const stage = document.createElement("div");
  stage.className = "stage";
  stage.setAttribute("role", "group");
  stage.setAttribute("aria-label", `Faces in the ${WHICH[i]} photo`);
  const image = document.createElement("img");
  image.src = verifying.urls[i];
  image.alt = `The ${WHICH[i]} photo, ${file.name}`;
  stage.append(image);
  const caption = document.createElement("figcaption");
  caption.textContent = `${i ? "Second" : "First"} photo: ${file.name}`;
  figure.append(stage, caption);
  return figure;
}

async function compare() {
  const generation = ++verifying.generation;
  const form = new FormData();
  verifying.files.forEach((file, i) => form.append(WHICH[i], file, file.name));
  const query = new URLSearchParams();
  verifying.choice.forEach((index, i) => {
    if (index !== null) query.set(`${WHICH[i]}_face`, String(index));
  });
  const out = $("verify-result");
  out.replaceChildren("Comparing…");
  out.dataset.state = "comparing";
  try {
    const answer = await api("POST", `/v1/verify${query.size ? "?" + query : ""}`, { body: form });
    if (generation !== verifying.generation) return;
    showVerdict(answer);
    (answer.images || []).forEach(showFaces);
    out.dataset.state = "done";
  } catch (error) {
    if (generation !== verifying.generation) return;
    out.replaceChildren();
    out.dataset.state = "error";
    showError(error.message);
  }
}

function showVerdict(answer) {
  const verdict = document.createElement("p");
  verdict.className = "verdict " + (answer.same_person ? "same" : "different");
  verdict.textContent = answer.same_person ? "The same person" : "Different people";
  const detail = document.createElement("p");
  detail.textContent =
    `Distance ${answer.distance.toFixed(3)}; the same person at most ${answer.threshold}.`;
  const lines = [verdict, detail];
  const images = answer.images || [];
  for (const [i, image] of images.entries()) {
    const n = image.faces.length;
    if (n < 2) continue;
    const how = verifying.choice[i] === null ? "the largest" : "as chosen";
    const line = document.createElement("p");
    line.textContent =
      `The ${WHICH[i]} photo has ${n} faces: face ${image.compared + 1} (${how}) was compared.`;
    lines.push(line);
  }
  const hint = document.createElement("p");
  hint.className = "hint";
  hint.textContent = "The faces compared are boxed in blue.";
  if (images.some((image) => image.faces.length > 1)) {
    hint.textContent +=
      " To compare another face, pick its dashed box (click it, or Tab to it and press Enter).";
  }
  lines.push(hint);
  $("verify-result").replaceChildren(...lines);
}

/** One photo's faces as buttons over it, at their boxes (pixels of the EXIF-rotated photo, as
 * the browser shows it: image-orientation from-image), the compared one pressed. */
function showFaces(image, i) {
  const stage = document.querySelector(`#verify-photos [data-photo="${WHICH[i]}"] .stage`);
  if (!stage) return;
  for (const old of stage.querySelectorAll(".pick")) old.remove();
  const n = image.faces.length;
  const areas = image.faces.map((b) => (b.right - b.left) * (b.bottom - b.top));
  const largest = areas.indexOf(Math.max(...areas));
  image.faces.forEach((box, index) => {
    const compared = index === image.compared;
    const face = document.createElement("button");
    face.type = "button";
    face.className = "pick";
    face.dataset.index = String(index);
    face.setAttribute("aria-pressed", String(compared));
    const words = [`Face ${index + 1} of ${n} in the ${WHICH[i]} photo`];
    if (n > 1) words.push(where(box, image.width, image.height));
    if (n > 1 && index === largest) words.push("the largest");
    if (compared) words.push("compared");
    face.setAttribute("aria-label", words.join(", "));
    face.style.left = (100 * box.left) / image.width + "%";
    face.style.top = (100 * box.top) / image.height + "%";
    face.style.width = (100 * (box.right - box.left)) / image.width + "%";
    face.style.height = (100 * (box.bottom - box.top)) / image.height + "%";
    const tag = document.createElement("span");
    tag.textContent = String(index + 1); // "compared" would not fit a small face: blue says it
    face.append(tag);
    face.addEventListener("click", () => pick(i, index, image.compared));
    stage.append(face);
  });
  const caption = stage.parentElement.querySelector("figcaption");
  const file = verifying.files[i];
  caption.textContent =
    `${i ? "Second" : "First"} photo: ${file.name} · ` + (n === 1 ? "1 face" : `${n} faces`);
  if (verifying.refocus === i) stage.querySelector('.pick[aria-pressed="true"]').focus();
}

function pick(i, index, compared) {
  if (index === compared) return;
  clearErrors();
  verifying.choice[i] = index;
  verifying.refocus = i;
  compare();
}

/** Where a face is in its photo, in words, for those who do not see the boxes. */
function where(box, width, height) {
  const x = (box.left + box.right) / 2 / width;
  const y = (box.top + box.bottom) / 2 / height;
  const across = x < 1 / 3 ? "left" : x > 2 / 3 ? "right" : "";
  const down = y < 1 / 3 ? "top" : y > 2 / 3 ? "bottom" : "";
  if (!down) return across ? `on the ${across}` : "in the middle";
  return `at the ${down}${across ? " " + across : ""}`;
}

export function setUpVerify() {
  $("verify-form").addEventListener("submit", verifyPhotos);
}
