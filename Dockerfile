# zipgate image: a static binary on distroless, running as a non-root user.
#   docker build -t zipgate .
#   docker build --build-arg VERSION=1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t zipgate:1.2.3 .
# See "Docker" in README.md for running it next to Postfix.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/zipgate/zipgate/internal/cli.Version=${VERSION} -X github.com/zipgate/zipgate/internal/cli.Commit=${COMMIT}" \
      -o /out/zipgate ./cmd/zipgate \
 && mkdir -p -m 0700 /out/data

# static-debian12:nonroot: CA certificates, time zones, /etc/passwd with
# user nonroot (65532); no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/zipgate /zipgate
# State (job store, its key, spool files); a new named volume mounted here
# takes over this owner.
COPY --from=build --chown=65532:65532 /out/data /var/lib/zipgate
WORKDIR /var/lib/zipgate
USER 65532:65532
VOLUME ["/var/lib/zipgate"]
# SMTP from Postfix; 8025 is the sender page once web.listen is 0.0.0.0:8025.
EXPOSE 10025 8025
# 0.0.0.0 inside the container: smtp.allowed_networks (default loopback
# only) must name the address Postfix connects from, see README.md.
ENTRYPOINT ["/zipgate","serve","-listen","0.0.0.0:10025"]
CMD ["-data","/var/lib/zipgate"]
