# The controller image: `meshpay-lab` itself, for a host that has mac80211_hwsim and a Docker
# engine but should not get a Python environment. Run it through compose/docker-compose.yml
# (privileged, the host's network and pid namespaces, the Docker socket).
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iw wpasupplicant iputils-ping kmod && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY meshpay/ /src/meshpay/
COPY orchestrator/ /src/orchestrator/
COPY topologies/ /src/topologies/
COPY node_image/ /src/node_image/
RUN pip install --no-cache-dir /src
WORKDIR /src
ENTRYPOINT ["meshpay-lab"]
CMD ["doctor"]
