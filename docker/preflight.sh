#!/usr/bin/env bash
# Kodify's preflight check: does this host meet the administrator guide's requirements?
#
#   docker/preflight.sh                  a Docker Compose host (the default)
#   docker/preflight.sh --kubernetes     a Kubernetes GPU node with kubectl for the cluster
#   docker/preflight.sh --kubernetes --cluster-only    the cluster alone (from a workstation)
#
# One line per check ([ OK ], [WARN] or [FAIL]); each failed check and each warning is
# followed by its fix.  Exit status: 0 when every required check passes (warnings do not
# count), 1 when one fails, 2 on a usage error.  Read-only: it changes nothing.
#
# Requirements (override through the environment):
#   KODIFY_MIN_DRIVER=525.105.17   NVIDIA driver
#   KODIFY_MIN_CUDA=12.0           CUDA version the driver supports
#   KODIFY_MIN_DOCKER=24.0.4       Docker Engine
#   KODIFY_MIN_KUBERNETES=1.24     Kubernetes server
#   KODIFY_MIN_GPU_GB=20           GPU memory, all GPUs together (40-80 GB recommended)
#   KODIFY_MIN_RAM_GB=28           memory
#   KODIFY_MIN_DISK_GB=100         total size of the disk holding the container images
#                                  (the guide's SSD: 100 GB to 1 TB)
#   KODIFY_MIN_IMAGES_GB=40        free disk where the container images are kept
#   KODIFY_MIN_MODELS_GB=30        free disk for the weights, until they are in place
#   KODIFY_MIN_SHM_GB=10           /dev/shm (a warning: the containers get their own)
#   KODIFY_HOST_DIR=/opt/mtsai     where config.yml and models/ are expected
# Operating system: Linux, one of the guide's distributions (Ubuntu 20.04 or later, Oracle
# Linux, Astra Linux); another Linux distribution is a warning.
# The commands it calls (nvidia-smi, docker, docker-compose, kubectl, nvidia-ctk, df, stat,
# uname, …) are looked up on PATH, PREFLIGHT_MEMINFO names the memory file (/proc/meminfo)
# and PREFLIGHT_OS_RELEASE the operating system's (/etc/os-release).  PREFLIGHT_ENV_FILE names
# compose's .env (docker/.env, next to compose.yml), whose database settings are checked.
set -uo pipefail

MIN_DRIVER=${KODIFY_MIN_DRIVER:-525.105.17}
MIN_CUDA=${KODIFY_MIN_CUDA:-12.0}
MIN_DOCKER=${KODIFY_MIN_DOCKER:-24.0.4}
MIN_KUBERNETES=${KODIFY_MIN_KUBERNETES:-1.24}
MIN_GPU_GB=${KODIFY_MIN_GPU_GB:-20}
MIN_RAM_GB=${KODIFY_MIN_RAM_GB:-28}
MIN_DISK_GB=${KODIFY_MIN_DISK_GB:-100}
MIN_IMAGES_GB=${KODIFY_MIN_IMAGES_GB:-40}
MIN_MODELS_GB=${KODIFY_MIN_MODELS_GB:-30}
MIN_SHM_GB=${KODIFY_MIN_SHM_GB:-10}
HOST_DIR=${KODIFY_HOST_DIR:-/opt/mtsai}
MEMINFO=${PREFLIGHT_MEMINFO:-/proc/meminfo}
OS_RELEASE=${PREFLIGHT_OS_RELEASE:-/etc/os-release}
ENV_FILE=${PREFLIGHT_ENV_FILE:-$(dirname "$0")/.env}

MODE=docker
HOST_CHECKS=1
usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}
while [ "$#" -gt 0 ]; do
    case "$1" in
        --docker) MODE=docker ;;
        --kubernetes | --k8s) MODE=kubernetes ;;
        --cluster-only) HOST_CHECKS=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "preflight: unknown option $1" >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done
if [ "$HOST_CHECKS" = 0 ] && [ "$MODE" != kubernetes ]; then
    echo "preflight: --cluster-only goes with --kubernetes" >&2
    exit 2
fi

FAILED=0
WARNED=0
ok() { printf '[ OK ] %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1))
    printf '[FAIL] %s\n' "$1"
    shift
    local line
    for line in "$@"; do printf '       fix: %s\n' "$line"; done
}
warn() {
    WARNED=$((WARNED + 1))
    printf '[WARN] %s\n' "$1"
    shift
    local line
    for line in "$@"; do printf '       fix: %s\n' "$line"; done
}
have() { command -v "$1" >/dev/null 2>&1; }

# version_ge A B: A >= B, comparing dot-separated numbers (1.24 < 1.28.3; 525.105.17 < 535.54.03).
version_ge() {
    local IFS=.
    local -a a b
    read -r -a a <<<"${1//[!0-9.]/}"
    read -r -a b <<<"${2//[!0-9.]/}"
    local i n=${#a[@]}
    [ "${#b[@]}" -gt "$n" ] && n=${#b[@]}
    for ((i = 0; i < n; i++)); do
        local x=$((10#${a[i]:-0})) y=$((10#${b[i]:-0}))
        [ "$x" -gt "$y" ] && return 0
        [ "$x" -lt "$y" ] && return 1
    done
    return 0
}

# Sizes: kB (1024 bytes, what df -k and /proc/meminfo count) against GB (10^9 bytes).
kb_from_gb() { echo $(($1 * 1000000000 / 1024)); }
gb_from_kb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e9 }'; }
gb_from_mib() { awk -v mib="$1" 'BEGIN { printf "%.1f", mib * 1048576 / 1e9 }'; }

# The nearest existing folder of a path (df needs one).
existing() {
    local path=$1
    while [ ! -e "$path" ] && [ "$path" != / ]; do path=$(dirname "$path"); done
    echo "$path"
}
# "AVAILABLE_KB SIZE_KB MOUNT_POINT FILESYSTEM" of the filesystem holding $1.
df_info() {
    df -Pk "$(existing "$1")" 2>/dev/null | awk 'NR == 2 { print $4, $2, $6, $1 }'
}
# The device number of the filesystem holding $1: a bind mount, or one filesystem mounted
# at two places, has two mount points but one device, and one free space.
device_of() {
    stat -c %d "$(existing "$1")" 2>/dev/null
}
df_size_kb() {
    df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $2 }'
}

OS_FIX="the guide supports Linux: Ubuntu 24.04 LTS, 22.04.4 LTS or 20.04.6 LTS, Oracle Linux, Astra Linux"

# The value of $1 in the os-release file, without its quotes.
os_release_value() {
    local value
    value=$(sed -n "s/^$1=//p" "$OS_RELEASE" 2>/dev/null | sed -n '$p')
    value=${value#[\"\']}
    printf '%s\n' "${value%[\"\']}"
}

check_os() {
    local kernel
    kernel=$(uname -s 2>/dev/null)
    if [ -n "$kernel" ] && [ "$kernel" != Linux ]; then
        fail "operating system: $kernel, not Linux (the NVIDIA Container Toolkit gives containers the GPUs on Linux only)" \
            "run Kodify on a Linux host: $OS_FIX"
        return
    fi
    if [ ! -r "$OS_RELEASE" ]; then
        warn "operating system: cannot read $OS_RELEASE" "check by hand that the host runs one of them: $OS_FIX"
        return
    fi
    local id version name
    id=$(os_release_value ID)
    version=$(os_release_value VERSION_ID)
    name=$(os_release_value PRETTY_NAME)
    name=${name:-$(os_release_value NAME) $version}
    case "$id" in
        ubuntu)
            if version_ge "$version" 20.04; then
                ok "operating system: $name"
            else
                warn "operating system: $name, older than Ubuntu 20.04" "upgrade: $OS_FIX"
            fi
            ;;
        astra* | ol)
            ok "operating system: $name"
            ;;
        *)
            warn "operating system: $name is not one of the guide's (Kodify runs in containers, so it may well work)" \
                "for a supported host: $OS_FIX"
            ;;
    esac
}

DRIVER_FIX="install an NVIDIA driver >= $MIN_DRIVER (Ubuntu: sudo ubuntu-drivers install, or sudo apt-get install nvidia-driver-535-server), then reboot"

check_nvidia() {
    if ! have nvidia-smi; then
        fail "NVIDIA driver: nvidia-smi not found (no driver, or no NVIDIA GPU)" "$DRIVER_FIX"
        return
    fi
    local driver
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
    if [ -z "$driver" ]; then
        fail "NVIDIA driver: nvidia-smi does not answer (driver not loaded?)" \
            "$DRIVER_FIX; check with: nvidia-smi"
        return
    fi
    if version_ge "$driver" "$MIN_DRIVER"; then
        ok "NVIDIA driver $driver (>= $MIN_DRIVER)"
    else
        fail "NVIDIA driver $driver is older than $MIN_DRIVER" "$DRIVER_FIX"
    fi

    local cuda
    cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -n 1)
    if [ -z "$cuda" ]; then
        fail "CUDA: nvidia-smi does not report the CUDA version the driver supports" \
            "install an NVIDIA driver that supports CUDA >= $MIN_CUDA (>= $MIN_DRIVER)"
    elif version_ge "$cuda" "$MIN_CUDA"; then
        ok "CUDA $cuda (>= $MIN_CUDA; the CUDA libraries come with the images)"
    else
        fail "CUDA $cuda is older than $MIN_CUDA" \
            "the CUDA version is the driver's: $DRIVER_FIX (the images bring the CUDA libraries)"
    fi

    local gpus total_mib=0 count=0 index name mib smallest=""
    gpus=$(nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits 2>/dev/null)
    while IFS=, read -r index name mib; do
        mib=${mib//[!0-9]/}
        [ -n "$mib" ] || continue
        count=$((count + 1))
        total_mib=$((total_mib + mib))
        if [ -z "$smallest" ] || [ "$mib" -lt "$smallest" ]; then smallest=$mib; fi
        echo "       GPU ${index// /}:${name} $(gb_from_mib "$mib") GB"
    done <<<"$gpus"
    local min_mib=$((MIN_GPU_GB * 1000000000 / 1048576))
    if [ "$count" -eq 0 ]; then
        fail "GPU memory: nvidia-smi lists no GPU" \
            "check that the GPU is seen by the driver (nvidia-smi -L) and by this machine (lspci | grep -i nvidia)"
    elif [ "$total_mib" -ge "$min_mib" ]; then
        ok "GPU memory $(gb_from_mib "$total_mib") GB on $count GPU(s) (>= $MIN_GPU_GB GB)"
        if [ "$count" -gt 1 ] && [ "$smallest" -lt "$min_mib" ]; then
            warn "no single GPU has $MIN_GPU_GB GB: the model must be split across GPUs" \
                "set ADDITIONAL_ARGS=--tensor-parallel-size $count in .env (and keep shm_size: 10g in compose.yml)"
        fi
    else
        fail "GPU memory $(gb_from_mib "$total_mib") GB is below $MIN_GPU_GB GB" \
            "Kodify needs GPUs with at least $MIN_GPU_GB GB together (40-80 GB recommended: A100 40/80 GB, H100 80 GB)"
    fi
}

check_toolkit() {
    if have nvidia-ctk || have nvidia-container-cli || have nvidia-container-runtime-hook; then
        local version=""
        have nvidia-ctk && version=$(nvidia-ctk --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
        ok "NVIDIA Container Toolkit${version:+ $version}"
    else
        fail "NVIDIA Container Toolkit not found (containers cannot use the GPUs)" \
            "install nvidia-container-toolkit (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), then: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker (Kubernetes: --runtime=containerd, or the NVIDIA GPU Operator)"
    fi
}

check_memory() {
    local kb
    kb=$(awk '/^MemTotal:/ { print $2 }' "$MEMINFO" 2>/dev/null)
    if [ -z "$kb" ]; then
        warn "memory: cannot read $MEMINFO" "check by hand that the host has >= $MIN_RAM_GB GB (free -g)"
    elif [ "$kb" -ge "$(kb_from_gb "$MIN_RAM_GB")" ]; then
        ok "memory $(gb_from_kb "$kb") GB (>= $MIN_RAM_GB GB)"
    else
        fail "memory $(gb_from_kb "$kb") GB is below $MIN_RAM_GB GB" \
            "give the host at least $MIN_RAM_GB GB of RAM (vLLM holds the model in memory while it loads; 10 GB of /dev/shm for several GPUs)"
    fi
    local cores
    cores=$(nproc 2>/dev/null || echo 0)
    if [ "$cores" -ge 8 ]; then
        ok "CPU: $cores cores (>= 8)"
    else
        warn "CPU: $cores cores, the guide asks for 8-16" \
            "give the host 8-16 cores (the fastest single-thread speed available); set WORKERS in .env to about the number of cores"
    fi
}

images_dir() {
    local dir=""
    if [ "$MODE" = docker ] && have docker; then
        dir=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)
    fi
    if [ -z "$dir" ]; then
        if [ "$MODE" = kubernetes ]; then dir=/var/lib/containerd; else dir=/var/lib/docker; fi
    fi
    echo "$dir"
}

check_disk() {
    local images models free_images size_images mount_images fs_images weights=""
    local free_models mount_models fs_models
    images=$(images_dir)
    models="$HOST_DIR/models"
    read -r free_images size_images mount_images fs_images <<<"$(df_info "$images")"
    read -r free_models _ mount_models fs_models <<<"$(df_info "$models")"
    if [ -z "${free_images:-}" ] || [ -z "${free_models:-}" ]; then
        warn "disk: df cannot tell the free space of $images and $models" \
            "check by hand: a disk of $MIN_DISK_GB GB or more, $MIN_IMAGES_GB GB free for the images, $MIN_MODELS_GB GB for the weights (df -h)"
        return
    fi
    local root_setting="\"data-root\" in /etc/docker/daemon.json"
    [ "$MODE" = kubernetes ] && root_setting="\"root\" in /etc/containerd/config.toml"
    if [ "${size_images:-0}" -ge "$(kb_from_gb "$MIN_DISK_GB")" ]; then
        ok "disk: $mount_images, where the images are kept, is $(gb_from_kb "$size_images") GB (>= $MIN_DISK_GB GB)"
    else
        fail "disk: $mount_images, where the images are kept ($images), is $(gb_from_kb "${size_images:-0}") GB, below $MIN_DISK_GB GB" \
            "move the images' folder ($root_setting) to a disk of at least $MIN_DISK_GB GB (an SSD: 100 GB to 1 TB)"
    fi
    if [ -d "$models" ] && [ -n "$(find "$models" -maxdepth 2 -name config.json -print -quit 2>/dev/null)" ]; then
        weights=present
    fi
    local need_images need_models
    need_images=$(kb_from_gb "$MIN_IMAGES_GB")
    need_models=0
    [ -n "$weights" ] || need_models=$(kb_from_gb "$MIN_MODELS_GB")
    # Mount points alone would count one free space twice (a bind mount, /var/lib/docker
    # and /opt on one disk): the device number, else df's device name, tells.
    local same=0 device_images device_models
    device_images=$(device_of "$images")
    device_models=$(device_of "$models")
    if [ "$mount_images" = "$mount_models" ]; then
        same=1
    elif [ -n "$device_images" ] && [ "$device_images" = "$device_models" ]; then
        same=1
    elif [[ "$fs_images" == /dev/* ]] && [ "$fs_images" = "$fs_models" ]; then
        same=1
    fi
    if [ "$same" = 1 ]; then
        local need=$((need_images + need_models))
        local what="the images" where=$mount_images
        [ "$need_models" -gt 0 ] && what="the images and the weights"
        [ "$mount_images" = "$mount_models" ] || where="$mount_images and $mount_models (one filesystem, $fs_images)"
        if [ "$free_images" -ge "$need" ]; then
            ok "disk: $(gb_from_kb "$free_images") GB free on $where for $what (>= $(gb_from_kb "$need") GB)"
        else
            fail "disk: $(gb_from_kb "$free_images") GB free on $where, $what need $(gb_from_kb "$need") GB" \
                "free space on $mount_images or move the images' folder ($root_setting) or $models to a larger disk (an SSD: 100 GB to 1 TB)"
        fi
        return
    fi
    if [ "$free_images" -ge "$need_images" ]; then
        ok "disk: $(gb_from_kb "$free_images") GB free on $mount_images for the images (>= $MIN_IMAGES_GB GB)"
    else
        fail "disk: $(gb_from_kb "$free_images") GB free on $mount_images ($images), the images need $MIN_IMAGES_GB GB" \
            "free space there or move the images' folder ($root_setting) to a larger disk"
    fi
    if [ "$need_models" -eq 0 ]; then
        ok "disk: the weights are in place in $models"
    elif [ "$free_models" -ge "$need_models" ]; then
        ok "disk: $(gb_from_kb "$free_models") GB free on $mount_models for the weights (>= $MIN_MODELS_GB GB)"
    else
        fail "disk: $(gb_from_kb "$free_models") GB free on $mount_models, the weights need $MIN_MODELS_GB GB" \
            "free space there, or put $models on a larger disk (a symbolic link to it works)"
    fi
}

check_shm() {
    local kb
    kb=$(df_size_kb /dev/shm)
    if [ -z "$kb" ]; then
        warn "/dev/shm: not mounted" "mount it: sudo mount -t tmpfs -o size=${MIN_SHM_GB}G tmpfs /dev/shm"
    elif [ "$kb" -ge "$(kb_from_gb "$MIN_SHM_GB")" ]; then
        ok "/dev/shm $(gb_from_kb "$kb") GB (>= $MIN_SHM_GB GB)"
    else
        warn "/dev/shm is $(gb_from_kb "$kb") GB, below $MIN_SHM_GB GB" \
            "compose.yml gives vLLM its own ${MIN_SHM_GB} GB (shm_size: 10g) and Kubernetes a memory volume, so this matters only for vLLM outside containers: sudo mount -o remount,size=${MIN_SHM_GB}G /dev/shm (and the same size in /etc/fstab)"
    fi
}

# The value of NAME in the env file (the last one wins, as in compose), or nothing.
env_value() {
    sed -n "s/^[[:space:]]*$1=\\(.*\\)\$/\\1/p" "$ENV_FILE" 2>/dev/null | sed -n '$p' | tr -d '\r'
}

# compose.yml starts its own PostgreSQL only with the profile bundled-postgres, and Kodify
# uses it only without a DB_URL: the two must agree.
check_env_file() {
    if [ ! -f "$ENV_FILE" ]; then
        warn "$ENV_FILE not found: compose reads the settings there" \
            "cp docker/env/per-user.env $ENV_FILE (or one-token.env, journal.env) and fill in its REQUIRED values"
        return
    fi
    local db_url profiles password bundled=0
    db_url=$(env_value DB_URL)
    profiles=$(env_value COMPOSE_PROFILES)
    password=$(env_value POSTGRES_PASSWORD)
    case ",$profiles," in *,bundled-postgres,*) bundled=1 ;; esac
    if [ -n "$db_url" ] && [ "$bundled" = 1 ]; then
        warn "$ENV_FILE: DB_URL names your own PostgreSQL, yet COMPOSE_PROFILES starts the bundled one, which nothing would use" \
            "remove bundled-postgres from COMPOSE_PROFILES (and POSTGRES_PASSWORD), or remove DB_URL to use the bundled PostgreSQL"
    elif [ -n "$db_url" ]; then
        ok "database: your own PostgreSQL (DB_URL in $ENV_FILE)"
    elif [ "$bundled" = 0 ]; then
        fail "$ENV_FILE: no database: DB_URL is empty and COMPOSE_PROFILES does not start the bundled PostgreSQL" \
            "add COMPOSE_PROFILES=bundled-postgres and a POSTGRES_PASSWORD, or set DB_URL to your own PostgreSQL"
    elif [ -z "$password" ]; then
        fail "$ENV_FILE: the bundled PostgreSQL needs POSTGRES_PASSWORD" \
            "set POSTGRES_PASSWORD (letters and digits: openssl rand -hex 32)"
    else
        ok "database: the bundled PostgreSQL (COMPOSE_PROFILES=bundled-postgres)"
    fi
}

check_host_files() {
    local config="$HOST_DIR/config.yml" models="$HOST_DIR/models"
    if [ -d "$config" ]; then
        fail "$config is a folder (Docker makes one when the file is missing at the first start)" \
            "sudo rmdir $config && sudo cp docker/config.yml $config"
    elif [ -f "$config" ]; then
        ok "$config present"
    else
        warn "$config not found (compose.yml mounts it at /vllm-workspace/config.yml)" \
            "sudo mkdir -p $HOST_DIR && sudo cp docker/config.yml $config (then list your upstreams in it)"
    fi
    local found
    found=$(find "$models" -maxdepth 2 -name config.json 2>/dev/null | sed "s|^$models/||; s|/config.json\$||" | sort | tr '\n' ' ')
    if [ -n "$found" ]; then
        ok "weights in $models: ${found% } (MODEL=/models/<folder>)"
    else
        warn "no model in $models (a folder with config.json, the tokenizer and the weights)" \
            "copy the model's folder there (e.g. $models/Qwen2.5-Coder-7B-Instruct) and set MODEL=/models/<folder> in .env"
    fi
}

DOCKER_FIX="install Docker Engine >= $MIN_DOCKER: https://docs.docker.com/engine/install/ (Ubuntu: sudo apt-get install docker-ce docker-ce-cli containerd.io docker-compose-plugin from Docker's repository)"

check_docker() {
    if ! have docker; then
        fail "Docker not found" "$DOCKER_FIX"
        return
    fi
    local version
    version=$(docker version --format '{{.Server.Version}}' 2>/dev/null)
    local daemon=1
    if [ -z "$version" ]; then
        daemon=0
        fail "Docker: the Docker daemon does not answer" \
            "start it (sudo systemctl enable --now docker) and run as root or as a member of the docker group (sudo usermod -aG docker \$USER, then log in again)"
    elif version_ge "$version" "$MIN_DOCKER"; then
        ok "Docker $version (>= $MIN_DOCKER)"
    else
        fail "Docker $version is older than $MIN_DOCKER" "$DOCKER_FIX"
    fi

    local compose
    compose=$(docker compose version --short 2>/dev/null | head -n 1)
    if [ -n "$compose" ]; then
        ok "Docker Compose ${compose#v} (docker compose)"
    elif have docker-compose && compose=$(docker-compose version --short 2>/dev/null | head -n 1) && [ -n "$compose" ]; then
        if version_ge "$compose" 1.29; then
            warn "Docker Compose ${compose#v} (the old docker-compose; use it instead of \`docker compose\`)" \
                "install the Compose plugin: sudo apt-get install docker-compose-plugin"
        else
            fail "docker-compose $compose is too old for compose.yml (needs 1.29 or the Compose plugin)" \
                "install the Compose plugin: sudo apt-get install docker-compose-plugin"
        fi
    else
        fail "Docker Compose not found (docker compose)" \
            "install the Compose plugin: sudo apt-get install docker-compose-plugin (Docker's repository)"
    fi

    [ "$daemon" = 1 ] || return
    local runtimes
    runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null)
    if [ -n "$runtimes" ] && [[ "$runtimes" != *nvidia* ]]; then
        warn "Docker has no nvidia runtime configured" \
            "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
    fi
}

check_kubernetes() {
    if ! have kubectl; then
        fail "kubectl not found" \
            "install kubectl (https://kubernetes.io/docs/tasks/tools/) and point it at the cluster (KUBECONFIG)"
        return
    fi
    local version
    version=$(kubectl version -o json 2>/dev/null | tr -d '\n ' | sed -n 's/.*"serverVersion":{[^}]*"gitVersion":"v\{0,1\}\([0-9][0-9.]*\)[^"]*".*/\1/p')
    if [ -z "$version" ]; then
        fail "Kubernetes: kubectl cannot reach the cluster" \
            "check the context (kubectl config current-context) and the credentials (KUBECONFIG); kubectl version must show a server version"
        return
    fi
    if version_ge "$version" "$MIN_KUBERNETES"; then
        ok "Kubernetes $version (>= $MIN_KUBERNETES)"
    else
        fail "Kubernetes $version is older than $MIN_KUBERNETES" \
            "upgrade the cluster to Kubernetes >= $MIN_KUBERNETES"
    fi
    local gpus
    gpus=$(kubectl get nodes -o 'jsonpath={range .items[*]}{.metadata.name}={.status.allocatable.nvidia\.com/gpu}{"\n"}{end}' 2>/dev/null |
        awk -F= '$2 + 0 > 0 { printf "%s%s (%s GPU)", sep, $1, $2; sep = ", " }')
    if [ -n "$gpus" ]; then
        ok "GPU nodes: $gpus"
    else
        fail "no node offers nvidia.com/gpu" \
            "install the NVIDIA GPU Operator or the NVIDIA device plugin (https://github.com/NVIDIA/k8s-device-plugin) on the GPU nodes"
    fi
}

echo "Kodify preflight ($MODE)"
if [ "$HOST_CHECKS" = 1 ]; then
    check_os
    check_nvidia
    check_toolkit
    check_memory
fi
if [ "$MODE" = docker ]; then
    check_docker
else
    check_kubernetes
fi
if [ "$HOST_CHECKS" = 1 ]; then
    check_disk
    check_shm
    [ "$MODE" = docker ] && check_host_files
    [ "$MODE" = docker ] && check_env_file
fi

if [ "$FAILED" -gt 0 ]; then
    echo "Preflight: $FAILED check(s) failed, $WARNED warning(s): fix the [FAIL] lines above."
    exit 1
fi
echo "Preflight: all required checks passed ($WARNED warning(s))."
exit 0
