// The Gallery health tab: what the server's review found, each finding with its own fix.

import { api, person } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { $, button } from "./dom.js";
import { act, showError } from "./messages.js";
import { counted, nameNode, sentence } from "./text.js";
import { forgetThumbnails, initials, thumbnail } from "./thumbnails.js";

export const runReview = () => act(review);

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
