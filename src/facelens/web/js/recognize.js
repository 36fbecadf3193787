// The Recognise tab: photos chosen, dropped or pasted, each shown with its faces boxed and named.

import { api } from "./api.js";
import { $, cell } from "./dom.js";
import { clearErrors, showError } from "./messages.js";
import { fileProblem, photoForm } from "./photos.js";
import { nameNode } from "./text.js";

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

export function setUpRecognize() {
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
