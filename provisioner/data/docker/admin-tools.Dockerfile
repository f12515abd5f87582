# The admin-tools image `provision schema` runs: this project's own, because the temporal-dsql fork's
# docker/targets/admin-tools.Dockerfile leaves out temporal-dsql-tool. Built by `provision build-images`
# with the fork's docker/ directory as context, after its binaries were laid out in build/<arch>/ and its
# schema/ in build/temporal/schema, as the fork's own Dockerfiles expect.
ARG ALPINE_TAG=3.23
FROM --platform=$TARGETPLATFORM alpine:${ALPINE_TAG}
ARG TARGETARCH
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -g 1000 temporal \
    && adduser -u 1000 -G temporal -D temporal
COPY ./build/${TARGETARCH}/temporal-dsql-tool \
     ./build/${TARGETARCH}/temporal-elasticsearch-tool \
     ./build/${TARGETARCH}/temporal-sql-tool \
     ./build/${TARGETARCH}/tdbg \
     ./build/${TARGETARCH}/temporal \
     /usr/local/bin/
COPY ./build/temporal/schema /etc/temporal/schema
USER temporal
CMD ["sh", "-c", "trap exit INT HUP TERM; sleep infinity"]
