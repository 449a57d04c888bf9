# MinIO built from its Go module, the same pinned version the native stack builds (stack/stack.sh), plus the
# MinIO client (mc) that docker/minio/setup.sh uses to create the bucket, the users and their policies.
FROM golang:1.26-bookworm AS build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ARG MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
ENV GOTOOLCHAIN=auto CGO_ENABLED=0 GOBIN=/out
RUN go install github.com/minio/minio@${MINIO_VERSION} && go install github.com/minio/mc@${MC_VERSION}

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/minio /out/mc /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/minio"]
