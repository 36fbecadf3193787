"""Annotation: boxes and names drawn legibly, names in any script rendered with real glyphs."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.core.annotate import KNOWN_COLOUR, Label, draw_labels, font_for, missing_glyphs
from facelens.models.base import Box

NAMES = ["张伟", "Ελένη", "Олег", "محمد", "मोहन", "สมชาย", "김민준", "やまだ", "Łukasz Ñúñez"]


@pytest.mark.parametrize("name", NAMES)
def test_every_script_has_a_font_with_all_its_glyphs(name: str) -> None:
    assert missing_glyphs(name) == ""


def test_chinese_uses_the_cjk_font_and_latin_the_latin_one() -> None:
    assert "CJK" in font_for("张").name
    assert "CJK" not in font_for("Z").name


def band(text: str) -> np.ndarray:
    canvas = np.zeros((200, 300, 3), dtype=np.uint8)
    drawn = draw_labels(canvas, [Label(Box(50, 20, 150, 120), text, KNOWN_COLOUR)])
    return drawn[120:, :]  # the text band under the box


def test_chinese_name_is_drawn_as_glyphs_not_placeholders() -> None:
    chinese, question_marks, tofu = band("张伟"), band("??"), band("\U000f0000\U000f0001")
    assert not np.array_equal(chinese, question_marks)
    assert not np.array_equal(chinese, tofu)
    # Two different names give different pixels: the glyphs are really there.
    assert not np.array_equal(chinese, band("李娜"))


def test_box_is_drawn_in_its_colour_and_the_rest_untouched() -> None:
    canvas = np.zeros((400, 400, 3), dtype=np.uint8)
    drawn = draw_labels(canvas, [Label(Box(100, 100, 200, 200), "x", KNOWN_COLOUR)])
    assert drawn[100, 150].tolist() == list(KNOWN_COLOUR)  # top edge
    assert drawn[150, 150].tolist() == [0, 0, 0]  # inside the box
    assert drawn[10, 10].tolist() == [0, 0, 0]  # far away
    assert canvas.max() == 0  # the input is not modified


def test_text_scales_with_the_image() -> None:
    def text_rows(size: int) -> int:
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        box = Box(size // 4, size // 4, size // 2, size // 2)
        drawn = draw_labels(canvas, [Label(box, "Name", KNOWN_COLOUR)])
        band = drawn[size // 2 + 5 :, :, 1] == KNOWN_COLOUR[1]
        return int(band.any(axis=1).sum())

    assert text_rows(3000) > 4 * text_rows(300)


def test_label_near_the_bottom_edge_stays_inside_the_image() -> None:
    canvas = np.zeros((100, 100, 3), dtype=np.uint8)
    drawn = draw_labels(canvas, [Label(Box(10, 60, 90, 100), "bottom", KNOWN_COLOUR)])
    assert (drawn[:60, :, 1] == KNOWN_COLOUR[1]).any()  # band placed above the box
