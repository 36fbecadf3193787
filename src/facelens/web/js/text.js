// How text is shown: names and messages always go in as text, never as HTML, with the
// whitespace HTML would hide made visible; and counts of things in words.

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
export function nameNode(name) {
  const span = document.createElement("span");
  span.className = "name";
  span.append(...withSpacesShown(name, HIDDEN_SPACE));
  return span;
}

/** The same as plain text, where no element can go (a canvas, an <option>). */
export function nameText(name) {
  return name.replace(HIDDEN_SPACE, (run) => "␣".repeat([...run].length));
}

/** Names, each shown as by nameNode, with commas between. */
export function listed(names) {
  return names.flatMap((name, i) => (i ? [", ", nameNode(name)] : [nameNode(name)]));
}

/** Nodes for a sentence made of strings and name elements; a server's message may quote a
 * name, so runs of spaces inside strings are shown too. */
export function sentence(...parts) {
  return parts.flatMap((part) =>
    typeof part === "string" ? withSpacesShown(part, INNER_HIDDEN_SPACE) : [part],
  );
}

/** "1 face", "2 faces". */
export const counted = (n, what) => (n === 1 ? `1 ${what}` : `${n} ${what}s`);
