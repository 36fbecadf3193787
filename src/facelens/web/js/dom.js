// Small DOM helpers every tab uses.

/** The element of this id. */
export const $ = (id) => document.getElementById(id);

/** A cell of ``content`` appended to ``row``. */
export function cell(row, ...content) {
  const td = document.createElement("td");
  td.append(...content);
  row.append(td);
  return td;
}

/** A button that runs ``onClick``. */
export function button(text, onClick, className = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.append(...[text].flat());
  b.addEventListener("click", onClick);
  return b;
}
