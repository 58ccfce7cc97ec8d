# syntax=docker/dockerfile:1
# Gatehouse container image: a static binary on distroless, running as non-root.
# Build (needs a container engine: docker, podman or buildah):
#   docker build -t gatehouse:dev .
#   docker build --build-arg VERSION=$(git describe --tags --always) -t ghcr.io/gatehouse/gatehouse:TAG .

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so source edits reuse the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
# The commit and build date of `gatehouse version` and gatehouse_build_info (the build
# has no VCS stamp here: .git is not copied).
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${BUILD_DATE}" \
      -o /out/gatehouse ./cmd/gatehouse

# distroless/static: no shell, no package manager; CA certificates and tzdata included
# (JWKS over HTTPS, monthly quotas in a configured time zone). The :nonroot tag runs as
# 65532:65532, the UID the Helm chart sets.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
USER 65532:65532
EXPOSE 9191 9192
ENTRYPOINT ["/usr/local/bin/gatehouse"]
# The configuration is mounted (the Helm chart mounts its ConfigMap there); nothing in the
# image trusts the demo key: `docker run IMAGE serve --demo` runs the demo explicitly.
CMD ["serve", "--config", "/etc/gatehouse/config.yaml", "--grpc-addr", ":9191", "--admin-addr", ":9192"]
