# Vigil worker image: `docker build -t vigil .`, then `docker run vigil` runs
# `vigil worker`; any other subcommand works too (`docker run vigil sql "SELECT 1"`).
#
# The first stage compiles the detectors to C (setup.py) into a wheel; the image that
# runs carries the wheel and no compiler.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, from pyproject.toml and the pinned set only, so the layer is
# rebuilt when they change and not on every source edit. The build context is
# filtered by .dockerignore: no tests, no local state, no key files.
WORKDIR /src
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl \
    && rm -rf /wheels /src

# Run as an unprivileged user whose home is the working directory.
# Build with `--build-arg VIGIL_UID=$(id -u)` to match the owner of a mounted key file.
ARG VIGIL_UID=10001
RUN groupadd --gid "${VIGIL_UID}" vigil \
    && useradd --uid "${VIGIL_UID}" --gid vigil --home-dir /var/lib/vigil \
        --create-home --shell /usr/sbin/nologin vigil \
    && install -d -o vigil -g vigil -m 0700 \
        /var/lib/vigil/data /var/lib/vigil/keys /var/lib/vigil/checkpoints /var/lib/vigil/alerting

# Three places kept apart (docs/audit.md): the store and per-process state, the keys
# Vigil creates (and the published audit public key), the exported audit checkpoints.
# New named volumes mounted there start owned by the vigil user.
ENV VIGIL_DATA_DIR=/var/lib/vigil/data \
    VIGIL_KEYS_DIR=/var/lib/vigil/keys \
    VIGIL_AUDIT_EXPORT_DIR=/var/lib/vigil/checkpoints \
    VIGIL_METRICS_HOST=0.0.0.0 \
    VIGIL_METRICS_PORT=9108
VOLUME ["/var/lib/vigil/data", "/var/lib/vigil/keys", "/var/lib/vigil/checkpoints"]
WORKDIR /var/lib/vigil
USER vigil
EXPOSE 9108

# Alive while the processing loop makes progress (docs/operations.md); a stuck worker
# is restarted and resumes from its last commit. Other subcommands serve no /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['VIGIL_METRICS_PORT'], timeout=4)"]

ENTRYPOINT ["vigil"]
CMD ["worker"]
