"""``docs/settings.md``, written from :class:`~facelens.settings.Settings`, the one place settings
are declared: ``python -m facelens.cli.settings_doc > docs/settings.md``. A test keeps the file
and the class the same, so the page never drifts from what facelens reads."""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo

from facelens.models.profiles import PROFILES
from facelens.settings import Settings

# Settings whose default is each model profile's own: shown with every profile's value.
PER_MODEL = {
    "threshold": "threshold",
    "detect_max_side": "detect_max_side",
    "detector": "detectors",
}

HEADER = """# Settings

<!-- Written by `python -m facelens.cli.settings_doc > docs/settings.md` from the Settings
class (src/facelens/settings.py); tests/unit/test_settings_doc.py keeps them the same. -->

Every setting is an environment variable, `FACELENS_` and the setting's name; the common ones
are also options of `facelens` itself (`facelens --data-dir D --threshold 0.5 recognize ...`).
A `FACELENS_*` variable that is no setting (a typo) is named in a warning. For a service, put
them in its env file (`deploy/systemd`), `compose.yaml`'s `environment:`, or a Kubernetes
ConfigMap or Secret (`deploy/k8s`).

| variable | default | what it does |
| --- | --- | --- |
"""


def _per_model(attribute: str) -> str:
    values = []
    for profile in PROFILES.values():
        value = getattr(profile, attribute)
        values.append(f"`{value[0] if isinstance(value, tuple) else value}` {profile.name}")
    return "the model's: " + ", ".join(values)


def _shown(name: str, field: FieldInfo) -> str:
    if name in PER_MODEL:
        return _per_model(PER_MODEL[name])
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value: Any = field.default
    if value is None:
        return "unset"
    if value == "":
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown() -> str:
    """The page: a row per setting, in the order the class declares them."""
    rows = []
    for name, field in Settings.model_fields.items():
        what = (field.description or "").replace("|", "\\|")
        rows.append(f"| `FACELENS_{name.upper()}` | {_shown(name, field)} | {what} |\n")
    return HEADER + "".join(rows)


if __name__ == "__main__":
    print(markdown(), end="")
