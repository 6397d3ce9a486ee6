# Vigil worker image: `docker build -t vigil .`, then `docker run vigil` runs
# `vigil worker`; any other subcommand works too (`docker run vigil sql "SELECT 1"`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install with the pinned dependency set. The build context is filtered by
# .dockerignore: no tests, no local state, no key files.
WORKDIR /src
COPY . .
RUN pip install -c constraints.txt . \
    && rm -rf /src

# Run as an unprivileged user whose home is the working and data directory.
# Build with `--build-arg VIGIL_UID=$(id -u)` to match the owner of a mounted key file.
ARG VIGIL_UID=10001
RUN groupadd --gid "${VIGIL_UID}" vigil \
    && useradd --uid "${VIGIL_UID}" --gid vigil --home-dir /var/lib/vigil \
        --create-home --shell /usr/sbin/nologin vigil

ENV VIGIL_DATA_DIR=/var/lib/vigil
WORKDIR /var/lib/vigil
USER vigil

ENTRYPOINT ["vigil"]
CMD ["worker"]
