# Vigil worker image: `docker build -t vigil .`, then `docker run vigil` runs
# `vigil worker`; any other subcommand works too (`docker run vigil sql "SELECT 1"`).
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
COPY . .
RUN pip install --no-deps . \
    && rm -rf /src

# Run as an unprivileged user whose home is the working and data directory.
# Build with `--build-arg VIGIL_UID=$(id -u)` to match the owner of a mounted key file.
ARG VIGIL_UID=10001
RUN groupadd --gid "${VIGIL_UID}" vigil \
    && useradd --uid "${VIGIL_UID}" --gid vigil --home-dir /var/lib/vigil \
        --create-home --shell /usr/sbin/nologin vigil \
    && install -d -o vigil -g vigil /var/lib/vigil/alerting

ENV VIGIL_DATA_DIR=/var/lib/vigil
WORKDIR /var/lib/vigil
USER vigil

ENTRYPOINT ["vigil"]
CMD ["worker"]
