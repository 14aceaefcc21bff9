# syntax=docker/dockerfile:1
# segsvc image: a builder stage installs the package into a virtualenv; the final stage
# copies only that virtualenv (the package carries its migrations) and runs unprivileged.

FROM python:3.12-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/segsvc
COPY pyproject.toml README.md ./
COPY segsvc ./segsvc
# segsvc/migrations links here: the wheel gets a copy of the migrations.
COPY migrations ./migrations
COPY generated ./generated
# The client package, for the client commands (`segsvc segment list`, ...) in the image.
COPY clients/python ./clients/python
# Runtime dependencies only: not the dev or embedded extras (production uses a real PostgreSQL).
RUN /opt/segsvc/bin/pip install . ./clients/python

FROM python:3.12-slim
ENV PATH=/opt/segsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SEGSVC_GRPC_ADDR=0.0.0.0:50051 \
    SEGSVC_HTTP_ADDR=0.0.0.0:8081
RUN groupadd --system --gid 10001 segsvc \
    && useradd --system --uid 10001 --gid segsvc --home-dir /app --shell /usr/sbin/nologin segsvc
WORKDIR /app
COPY --from=builder /opt/segsvc /opt/segsvc
USER 10001:10001
EXPOSE 50051 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["segsvc"]
CMD ["serve"]
