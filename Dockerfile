# gfn-autolabel Label Studio ML backend.
#
#   docker compose up --build        (see docker-compose.yml and docs/LABELSTUDIO.md)
#
# Installs the exact versions of requirements.lock (without the FiftyOne adapter's packages), then
# the project itself, and serves `gfn-autolabel serve-labelstudio` with gunicorn + uvicorn workers.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GFN_CACHE=/data/cache \
    MODEL_DIR=/data/models \
    HOST=0.0.0.0 \
    PORT=9090 \
    WORKERS=1 \
    THREADS=8 \
    LOG_LEVEL=info

# libgl/libglib are not needed by the headless OpenCV wheels; curl is for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock ./
RUN grep -v -E '^(fiftyone|mongoengine|motor)' requirements.lock > /tmp/requirements.txt \
    && pip install --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY pyproject.toml README.md ./
COPY core ./core
COPY labelstudio_backend ./labelstudio_backend
COPY gfn_fiftyone ./gfn_fiftyone
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 gfn \
    && mkdir -p /data/models /data/cache \
    && chown -R gfn:gfn /data

USER gfn
VOLUME ["/data"]
EXPOSE 9090

# The backend listens on 0.0.0.0 here, so it starts only with BASIC_AUTH_USER/BASIC_AUTH_PASS set (or
# ALLOW_UNAUTHENTICATED=true, logged as a warning); the credentials protect /health too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS ${BASIC_AUTH_USER:+-u "$BASIC_AUTH_USER:$BASIC_AUTH_PASS"} "http://127.0.0.1:${PORT}/health" || exit 1

CMD ["sh", "-c", "exec gfn-autolabel serve-labelstudio --host \"$HOST\" --port \"$PORT\" --workers \"$WORKERS\" --threads \"$THREADS\" --log-level \"$LOG_LEVEL\""]
