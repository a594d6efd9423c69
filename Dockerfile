# Image for the app processes of docker-compose.yml: `atp worker`, `atp api`, `atp simulate`.
# Build: docker build -t inventory-availability .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them. The list
# comes from pyproject.toml and every version from constraints.txt (the same pins as `make`).
# Every pinned dependency has a manylinux wheel for CPython 3.11, so no compiler is needed.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (a regular, non-editable install into site-packages).
COPY atp/ atp/
COPY api/ api/
COPY stream/ stream/
RUN pip install -c constraints.txt . \
    && rm -rf build ./*.egg-info

# Unprivileged user; it owns only the data directory (faust's datadir lives under it).
RUN groupadd --system --gid 10001 atp \
    && useradd --system --uid 10001 --gid atp --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin atp \
    && mkdir -p /app /var/lib/atp \
    && chown atp:atp /var/lib/atp

WORKDIR /app
# The network configuration (root-owned, read-only for the app); ATP_NETWORK_FILE points here.
COPY config/ config/

ENV ATP_NETWORK_FILE=/app/config/network.yaml \
    ATP_DATA_DIR=/var/lib/atp

USER atp:atp

# 8000: API (`atp api`); 6066: worker /metrics and /healthz (`atp worker`).
EXPOSE 8000 6066

ENTRYPOINT ["atp"]
CMD ["--help"]
