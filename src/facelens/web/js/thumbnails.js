// Faces' thumbnails, fetched with the key (an <img> could not send it) and kept until the
// gallery changes; a person's initials until one arrives, or when none is kept.

import { api } from "./api.js";

const thumbnails = new Map(); // URL → object URL promise (or null: none kept)

/** A round placeholder with a name's initials. */
export function initials(name) {
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

/** The thumbnail at ``url``: the initials now, the picture once fetched. */
export function thumbnail(url, name, alt) {
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

/** After a change to the gallery: thumbnails are fetched again. */
export function forgetThumbnails() {
  for (const pending of thumbnails.values()) pending.then((src) => src && URL.revokeObjectURL(src));
  thumbnails.clear();
}
