# syntax=docker/dockerfile:1
# The relay image: one image, three roles (`relay attestor|relayer|submitter --config ...`).
# Not built in CI: no container engine runs there (see docs/operations.md, "The image").
#   docker build -t registry.example.com/relay:0.1.0 .

# --- build: generate the gRPC stubs, then install the package and its dependencies into a venv ---
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/relay
COPY setup.cfg pyproject.toml README.md ./
COPY proto/ proto/
COPY relay/ relay/
COPY adapters/ adapters/
# relay/v1 is generated from proto/ (never copied from a working tree).
RUN rm -rf relay/v1 \
 && /opt/relay/bin/pip install "grpcio-tools>=1.70,<2" \
 && /opt/relay/bin/python -m relay.rpc.build \
 && /opt/relay/bin/pip install . \
 && /opt/relay/bin/pip uninstall -y grpcio-tools

# --- runtime: the venv only, as an unprivileged user ------------------------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /var/lib/relay --shell /usr/sbin/nologin relay \
 && install -d -o relay -g relay -m 0750 /var/lib/relay
COPY --from=build /opt/relay /opt/relay
ENV PATH=/opt/relay/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/relay
# gRPC and /metrics + /healthz + /readyz (the chart's ports.grpc and ports.http).
EXPOSE 50051 9100
ENTRYPOINT ["relay"]
CMD ["--help"]
