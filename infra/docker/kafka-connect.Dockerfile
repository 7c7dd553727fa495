# syntax=docker/dockerfile:1.7
# Kafka Connect for Strimzi with the Debezium PostgreSQL connector plugin
# (infra/k8s/kafka/kafka-connect.yaml uses it as spec.image).
#   docker build -f infra/docker/kafka-connect.Dockerfile \
#     --build-arg DEBEZIUM_SHA512=$(cat infra/docker/debezium-connector-postgres.sha512) \
#     -t REPO/kafka-connect-debezium:TAG infra/docker
# The build fails closed: without DEBEZIUM_SHA512 (the sha512 Maven Central publishes next to
# the plugin archive, debezium-connector-postgres-<version>-plugin.tar.gz.sha512), or with a
# wrong one, nothing is installed. The development machine cannot reach Maven Central, so the
# value is not in the repository yet: record it in debezium-connector-postgres.sha512 from a
# machine that can (see infra/README.md), and check it against a second source.

ARG STRIMZI_IMAGE=quay.io/strimzi/kafka:0.45.0-kafka-3.9.0

FROM alpine:3.20 AS plugin
# Same Debezium release as the envelopes streaming/cdc/debezium.py is tested against.
ARG DEBEZIUM_VERSION=2.7.3.Final
ARG DEBEZIUM_SHA512
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
WORKDIR /plugins
RUN if ! echo "${DEBEZIUM_SHA512}" | grep -Eq '^[0-9a-f]{128}$'; then \
      echo "DEBEZIUM_SHA512 must be the plugin archive's sha512 (128 hex digits)" >&2; exit 1; \
    fi \
    && wget -q -O /tmp/plugin.tar.gz \
      "https://repo1.maven.org/maven2/io/debezium/debezium-connector-postgres/${DEBEZIUM_VERSION}/debezium-connector-postgres-${DEBEZIUM_VERSION}-plugin.tar.gz" \
    && echo "${DEBEZIUM_SHA512}  /tmp/plugin.tar.gz" | sha512sum -c - \
    && mkdir -p /plugins/debezium-connector-postgres \
    && tar -xzf /tmp/plugin.tar.gz -C /plugins \
    && rm /tmp/plugin.tar.gz

# checkov:skip=CKV_DOCKER_2:health is probed by Kubernetes (liveness/readiness/startup probes), not by Docker
# checkov:skip=CKV_DOCKER_7:the base image is pinned by a build argument (a versioned tag), which checkov does not resolve
FROM ${STRIMZI_IMAGE}
COPY --from=plugin /plugins/ /opt/kafka/plugins/
USER 1001
