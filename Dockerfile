# The bridge as a container image: the hashed runtime lock, then the bridge's own wheel, run as a
# non-root user. One image, the Procfile's three process types as its command:
#   bridge migrate   (the release step: run once per deploy, before the others)
#   bridge serve     (web; honours PORT, default 8000)
#   bridge worker
# compose.yaml runs them with PostgreSQL; README, "Deploy with a container".

FROM python:3.11-slim AS build
WORKDIR /src
# Every file is checked against its hash; the lock also pins the build backend (setuptools), so
# building the wheel with --no-build-isolation fetches nothing unpinned.
COPY requirements.txt ./
RUN python -m venv /opt/bridge \
 && /opt/bridge/bin/pip install --no-cache-dir --disable-pip-version-check \
      --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY bridge/ bridge/
RUN /opt/bridge/bin/pip wheel --no-cache-dir --disable-pip-version-check \
      --no-deps --no-build-isolation -w /tmp/wheels . \
 && /opt/bridge/bin/pip install --no-cache-dir --disable-pip-version-check \
      --no-deps /tmp/wheels/*.whl

FROM python:3.11-slim
ENV PATH=/opt/bridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
COPY --from=build /opt/bridge /opt/bridge
# /data is for a SQLite database (DATABASE_URL=sqlite:////data/bridge.db on a volume); with
# PostgreSQL nothing is written inside the container.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home bridge \
 && mkdir /data && chown bridge:bridge /data
WORKDIR /app
# config/portals.yaml (BRIDGE_CONFIG's default, relative to /app) holds no secrets, only ${VAR}
# references: it is built into the image, or mounted over /app/config at run time.
COPY config/ config/
# Numeric, so a runtime that requires a non-root user (Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["bridge"]
CMD ["serve"]
