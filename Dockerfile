# syntax=docker/dockerfile:1.7
#
# Prompt2Pic images. One Dockerfile, three targets (BuildKit is required: Docker 23+ / Compose v2):
#
#   bot          Telegram front: the app and its light dependencies, no torch.
#                  docker build --target bot -t prompt2pic-bot .
#   worker-cpu   Würstchen worker with the CPU-only torch wheel from the PyTorch CPU index
#                (PyPI's Linux torch is the CUDA build and pulls several GB of CUDA libraries).
#                  docker build --target worker-cpu -t prompt2pic-worker-cpu .
#   worker-cuda  Würstchen worker with the CUDA torch (the host needs the NVIDIA driver and the
#                NVIDIA Container Toolkit; the CUDA runtime libraries come inside the torch wheels).
#                  docker build --target worker-cuda -t prompt2pic-worker-cuda .
#
# Build arguments (docker build --build-arg NAME=value, or build.args in docker-compose.yml):
#   PYTHON_IMAGE          the pinned Python base image.
#   TORCH_VERSION         torch release installed in both worker images.
#   TORCH_CPU_INDEX_URL   index for worker-cpu's torch: https://download.pytorch.org/whl/cpu or a
#                         mirror of it. Empty or `pypi`: PyPI's torch (the CUDA build, several GB
#                         larger; it runs on the CPU as well), for where the CPU index is unreachable
#                         (the CI's container check builds it so).
#   TORCH_CUDA_INDEX_URL  index for worker-cuda's torch: PyPI by default (its Linux wheel is the CUDA
#                         build); https://download.pytorch.org/whl/cu126 (cu128, ...) for a CUDA
#                         version that matches an older host driver.
#   APP_UID               uid and gid of the unprivileged user the app runs as.
#
# The app runs from its source folder, /app (`python app.py --role ...`), with its dependencies in
# /opt/venv; the dependency lists come from pyproject.toml. No secret is read at build time or
# stored in an image: the bot token and the S3 keys come at run time from the environment or from
# Docker secrets (NAME_FILE, see deploy/docker/entrypoint.sh).

ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

###############################################################################
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

###############################################################################
# builder: the dependency lists, and wheels of the bot's dependencies (no torch).
# Only pyproject.toml goes in, so this layer is rebuilt when dependencies change, not code.
FROM python-base AS builder
WORKDIR /src
COPY pyproject.toml deploy/docker/requirements_from_pyproject.py ./
RUN mkdir /wheels \
    && python requirements_from_pyproject.py pyproject.toml > /wheels/requirements-bot.txt \
    && python requirements_from_pyproject.py pyproject.toml worker > /wheels/requirements-worker.txt \
    && python requirements_from_pyproject.py pyproject.toml openvino > /wheels/requirements-openvino.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels -r /wheels/requirements-bot.txt

###############################################################################
# The application source (what .dockerignore lets in), for the runtime targets.
FROM scratch AS source
COPY app.py /app/
COPY domain/ /app/domain/
COPY adapters/ /app/adapters/
COPY config/ /app/config/

###############################################################################
# Virtual environments, one per image; the runtime targets copy only /opt/venv.
FROM python-base AS bot-venv
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
       -r /wheels/requirements-bot.txt

FROM python-base AS worker-cpu-venv
ARG TORCH_VERSION=2.15.0
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
# torch first, from the CPU index (or PyPI when TORCH_CPU_INDEX_URL is empty or `pypi`); the next
# install keeps it (it satisfies "torch>=2.10") and takes the rest of the worker's requirements
# from PyPI, with the OpenVINO backend (the openvino extra: GENERATOR_BACKEND=auto picks it on CPUs).
RUN python -m venv /opt/venv \
    && case "${TORCH_CPU_INDEX_URL}" in \
         "" | pypi) /opt/venv/bin/pip install --no-cache-dir "torch==${TORCH_VERSION}" ;; \
         *) /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX_URL}" "torch==${TORCH_VERSION}" ;; \
       esac
# The check: the torch version asked for, and one that computes on the CPU. From the CPU index it
# must also be the CPU-only build (a CUDA build there means a wrong index, and gigabytes of CUDA
# libraries nobody uses). PyPI's Linux torch is always the CUDA build, which runs on the CPU too
# (no GPU is needed to import it or to compute on the CPU), so from PyPI a CUDA build is accepted.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    /opt/venv/bin/pip install --no-cache-dir --find-links=/wheels \
       -r /wheels/requirements-bot.txt -r /wheels/requirements-worker.txt -r /wheels/requirements-openvino.txt \
    && /opt/venv/bin/python -c "import torch; import openvino, nncf; from_pypi = '${TORCH_CPU_INDEX_URL}' in ('', 'pypi'); \
assert torch.__version__.startswith('${TORCH_VERSION}') and (from_pypi or not torch.version.cuda), torch.__version__; \
assert torch.ones(2, 2).matmul(torch.ones(2, 2)).sum().item() == 8.0"

FROM python-base AS worker-cuda-venv
ARG TORCH_VERSION=2.15.0
ARG TORCH_CUDA_INDEX_URL=https://pypi.org/simple
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_CUDA_INDEX_URL}" "torch==${TORCH_VERSION}"
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    /opt/venv/bin/pip install --no-cache-dir --find-links=/wheels \
       -r /wheels/requirements-bot.txt -r /wheels/requirements-worker.txt \
    && /opt/venv/bin/python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}') and torch.version.cuda, torch.__version__"

###############################################################################
# runtime: what every image shares. Non-root user, entry point, health check.
FROM python-base AS runtime
ARG APP_UID=10001
LABEL org.opencontainers.image.title="prompt2pic" \
      org.opencontainers.image.description="Text-to-image for Telegram: bot, Kafka, Würstchen v2 workers, S3" \
      org.opencontainers.image.licenses="Apache-2.0"
# The source (/app) belongs to root and is read-only for the app; it writes only to /app/data
# (the app's relative data/ paths), /cache (model and compile caches) and /tmp.
# A regular (not --system) account: its uid is above SYS_UID_MAX; --no-log-init keeps lastlog small.
RUN groupadd --gid "${APP_UID}" app \
    && useradd --no-log-init --uid "${APP_UID}" --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /app/data /cache/huggingface /cache/compile \
    && chown -R app:app /app/data /cache
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/p2p-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/p2p-healthcheck
ENV PATH=/opt/venv/bin:${PATH} \
    HF_HOME=/cache/huggingface \
    COMPILE_CACHE_DIR=/cache/compile
WORKDIR /app
USER ${APP_UID}:${APP_UID}
# HTTP_PORT (default 8080): /healthz, /readyz, /metrics, /files/..., /telegram/webhook.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/p2p-healthcheck", "/healthz"]
ENTRYPOINT ["p2p-entrypoint"]
CMD ["python", "app.py", "--role", "all"]

###############################################################################
FROM runtime AS worker-cpu
COPY --from=worker-cpu-venv /opt/venv /opt/venv
COPY --from=source /app/ /app/
ENV GENERATOR=wuerstchen \
    GENERATOR_DEVICE=cpu
# Model weights (several GB) are downloaded once into this volume.
VOLUME ["/cache"]
CMD ["python", "app.py", "--role", "worker"]

###############################################################################
FROM runtime AS worker-cuda
COPY --from=worker-cuda-venv /opt/venv /opt/venv
COPY --from=source /app/ /app/
ENV GENERATOR=wuerstchen \
    GENERATOR_DEVICE=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
VOLUME ["/cache"]
CMD ["python", "app.py", "--role", "worker"]

###############################################################################
# Last stage = the default target of a plain `docker build .`.
FROM runtime AS bot
COPY --from=bot-venv /opt/venv /opt/venv
COPY --from=source /app/ /app/
CMD ["python", "app.py", "--role", "bot"]
