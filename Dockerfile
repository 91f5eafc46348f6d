# Hito's image: the `hito` command (worker, pager, provisioning, operator tools) on a slim
# Python, from the locked dependency tree, as a non-root user.
#
#   docker build -t hito:0.1.0 .          # docker-compose.yml builds it as well
#
# There is no Docker engine on the development machines: each step below is a script that CI
# runs in a clean directory without Docker (infra/image/check.sh: these inputs exist, the wheel
# builds, and installs and runs exactly as here).

# Exact tag (Debian 12, Python 3.11 like the development machines). Pin the digest too where a
# registry is reachable: python:3.11.14-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lock/ lock/
COPY streams/ streams/
COPY schemas/ schemas/
COPY bench/ bench/
COPY infra/ infra/
RUN bash infra/image/build-wheel.sh /src /dist python3

FROM ${PYTHON_IMAGE}
# A fixed uid/gid, so files on shared volumes (state, worker targets, Grafana's token) and
# secrets mounted from the host can be given to it. A named volume first mounted here takes
# these directories' owner and mode: the services that read one (Prometheus the targets,
# Grafana its token) join group 10001 in docker-compose.yml; nobody else can read them.
RUN groupadd --system --gid 10001 hito \
 && useradd --system --uid 10001 --gid hito --no-create-home --home-dir /var/lib/hito hito \
 && install -d -o hito -g hito -m 0750 /var/lib/hito /var/lib/hito/targets /var/lib/hito/grafana
COPY --from=build /dist/ /tmp/dist/
COPY lock/runtime.txt /tmp/runtime.txt
COPY infra/image/install-wheel.sh /tmp/install-wheel.sh
RUN bash /tmp/install-wheel.sh /opt/hito /tmp/runtime.txt /tmp/dist/hito-*.whl python3 \
 && rm -rf /tmp/dist /tmp/runtime.txt /tmp/install-wheel.sh /root/.cache
ENV PATH=/opt/hito/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HITO_STATE_DIR=/var/lib/hito \
    HITO_CACHE_DIR=/var/lib/hito/cache
USER hito:hito
WORKDIR /var/lib/hito
ENTRYPOINT ["hito"]
CMD ["--help"]
