"""Settings read from the environment: unknown FACELENS_ variables are named."""

from __future__ import annotations


def test_unknown_facelens_variables_are_named_and_test_variables_are_not() -> None:
    from facelens.settings import unknown_variables

    environ = {
        "FACELENS_THRESHOLD": "0.5",
        "FACELENS_TRESHOLD": "0.5",  # a typo
        "FACELENS_TEST_FACES": "/x",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == ["FACELENS_TRESHOLD"]
