"""The HTTP service: the app, its routes (``/v1``, ``/predictor``), keys, limits and metrics, and
the foreign APIs it also speaks (``api/compat/``)."""
