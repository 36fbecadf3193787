// Photos the user picked: how they are sent, and what to say when the server cannot read one.

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
export async function fileProblem(file, label, message, unread) {
  const prefix = label + ": ";
  const said = message.startsWith(prefix) ? message.slice(prefix.length) : message;
  return unread && (await isHeic(file)) ? `${said} ${HEIC_HINT}` : said;
}

/** One photo in a multipart form under its own name, as the People tab sends photos: the
 * server reads it whatever the browser thinks its type is, and its answers name the file. */
export function photoForm(field, file, label) {
  const form = new FormData();
  form.append(field, file, label);
  return { body: form };
}
