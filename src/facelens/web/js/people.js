// The People tab: who is enrolled, searched; add a person from photos, add photos, see and
// remove faces, rename, merge into another, delete.

import { api, person } from "./api.js";
import { answered, askText, confirmAction } from "./dialogs.js";
import { $, button } from "./dom.js";
import { act, guarded, showError } from "./messages.js";
import { fileProblem, photoForm } from "./photos.js";
import { counted, nameNode, nameText, sentence } from "./text.js";
import { forgetThumbnails, initials, thumbnail } from "./thumbnails.js";

let everyone = [];

export async function loadPeople() {
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

export function renderPeople() {
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



export async function addPerson(event) {
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
