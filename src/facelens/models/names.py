"""The names of the model profiles and of the detectors, as plain ``Literal`` types: the settings
use them, and so can code that must not import pydantic to know them (the start-up path, which
begins loading a model before the settings are read: ``facelens/__main__.py``)."""

from __future__ import annotations

from typing import Literal

ModelName = Literal["sface", "dlib"]
DetectorName = Literal["yunet", "hog", "cnn", "haar"]
