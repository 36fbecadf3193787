"""Letters of other scripts that look like Latin ones: the look-alike part of a name's identity.

Unicode's confusables data (UTS #39) is not in any package we ship, and nothing is fetched at run
time, so this is a compact table of its entries for the scripts whose letters pass for Latin in
a name: Cyrillic, Greek, Armenian and Cherokee (full-width Latin is folded by NFKC already).
Each letter maps to the Latin letter (or digit) its shape matches in common sans-serif fonts,
capitals and small letters separately: Greek capital nu looks like 'N', its small nu like 'v'.
Letters with no Latin twin (Cyrillic 'Д', 'и', Greek 'Σ', 'ω') are left as they are, so a name
written wholly in another script keeps its own identity unless it looks like a Latin one.
"""

from __future__ import annotations

import unicodedata

# (letters, the Latin letters they look like), position by position; from confusables.txt.
_LOOK_LATIN = (
    # Cyrillic capitals
    ("\u0410\u0412\u0421\u0415\u041d\u0406\u0408\u041a", "ABCEHIJK"),
    ("\u041c\u041e\u0420\u0405\u0422\u0425\u04ae\u051a", "MOPSTXYQ"),
    ("\u051c\u042c\u04c0\u0417\u04e0\u050c\u0474", "Wbl33GV"),
    # Cyrillic small letters (small 'в', 'н' look like small capitals: their capitals count)
    ("\u0430\u0441\u0501\u0435\u04bd\u04bb\u0456\u04cf", "acdeehii"),
    ("\u0458\u043a\u043e\u0440\u051b\u0433\u0455\u0442", "jkopqrst"),
    ("\u0446\u0475\u051d\u0445\u0443\u04af\u043f\u043c\u0431", "uvwxyynm6"),
    # Greek capitals
    ("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c", "ABEZHIKM"),
    ("\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03f9\u037f\u03dc", "NOPTYXCJF"),
    # Greek small letters
    ("\u03b1\u03b2\u03b3\u03b9\u03ba\u03bd\u03bf\u03c0", "a\u00dfyikvon"),
    ("\u03c1\u03c3\u03c4\u03c5\u03b7\u03f2\u03f3\u03f1", "potuncjp"),
    # Armenian capitals, then small letters
    ("\u0555\u054d\u054f", "OUS"),
    ("\u0570\u0578\u057c\u0585\u057d\u0581\u0584\u0563\u0566\u0561\u0575", "hnnougfqqwj"),
    # Cherokee (its small letters are small capitals: their capitals count)
    ("\u13aa\u13f4\u13df\u13a0\u13ac\u13c0\u13f3\u13bb", "ABCDEGGH"),
    ("\u13ab\u13e6\u13de\u13b7\u13e2\u13a1\u13d2\u13da", "JKLMPRRS"),
    ("\u13d5\u13a2\u13d9\u13b3\u13d4\u13a9\u13bd\u13c3", "STVWWYYZ"),
    ("\u13cf\u13e7\u13c2\u13a5\u13ce\u13ee", "bdhi46"),
)
# Latin letters drawn with a stroke look like the plain letter with a combining overlay (which
# Unicode does not compose into them): 'ø' and 'o' + U+0338 are one shape. The short overlays
# look like the long ones.
_OVERLAID = {
    "\u00f8": "o\u0338",
    "\u00d8": "O\u0338",
    "\u0142": "l\u0338",
    "\u0141": "L\u0338",
    "\u0337": "\u0338",
    "\u0336": "\u0335",
}
_TO_LATIN: dict[int, str] = {
    **{
        ord(c): latin
        for letters, latins in _LOOK_LATIN
        for c, latin in zip(letters, latins, strict=True)
    },
    **{ord(c): shape for c, shape in _OVERLAID.items()},
}

# Scripts whose letters are confusable with each other: a word mixing two of them is refused.
# Other scripts mix with Latin in real names (Japanese with Latin letters) and share no shapes.
CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def latin_skeleton(text: str) -> str:
    """``text`` with every letter that looks like a Latin letter written as that letter, case
    by case, before and after compatibility decomposition (mathematical and other styled
    letters are decomposed to the letters they style). Not normalized further."""
    shown = unicodedata.normalize("NFD", text).translate(_TO_LATIN)
    return unicodedata.normalize("NFKD", shown).translate(_TO_LATIN)


def _script(c: str) -> str | None:
    """The script of a letter among :data:`CONFUSABLE_SCRIPTS` (by its Unicode name), if any."""
    if not unicodedata.category(c).startswith("L"):
        return None
    script = unicodedata.name(c, "").split(" ", 1)[0]
    return script if script in CONFUSABLE_SCRIPTS else None


def mixed_script_word(name: str) -> tuple[str, list[str]] | None:
    """The first word of ``name`` (a run of letters and marks) whose letters come from two or
    more of :data:`CONFUSABLE_SCRIPTS`, with those scripts in order of appearance; None if no
    word does. Words apart may differ ('Иван Smith'). As UTS #39's "moderately restrictive"
    profile: a real name does not write one word in two of these alphabets, a look-alike does."""
    words: list[str] = []
    word = ""
    for c in unicodedata.normalize("NFKC", name):
        if unicodedata.category(c)[0] in "LM":
            word += c
        else:
            words.append(word)
            word = ""
    words.append(word)
    for word in words:
        scripts = list(dict.fromkeys(s for s in map(_script, word) if s is not None))
        if len(scripts) > 1:
            return word, [s.capitalize() for s in scripts]
    return None
