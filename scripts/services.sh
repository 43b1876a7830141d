#!/usr/bin/env bash
# Install (when missing) and start, on loopback only, the services the test suite talks to.
# Idempotent; called by `make test`. Each service block checks before it acts.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# --- bubblewrap (the app sandbox, andon.apps.sandbox) ------------------------------------------
# Every app instance runs under bwrap; the sandbox and misbehaving-app tests need it.
if ! command -v bwrap >/dev/null 2>&1; then
    echo "services: installing bubblewrap"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1; then
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q --no-install-recommends bubblewrap >/dev/null
    fi
fi

# --- libgomp (OpenMP, which LightGBM's wheel links: andon.pdm.rul, decision 0903) ------------
if ! compgen -G '/usr/lib/*/libgomp.so.1' >/dev/null && ! compgen -G '/lib/*/libgomp.so.1' >/dev/null; then
    echo "services: installing libgomp1"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends libgomp1 >/dev/null 2>&1; then
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q --no-install-recommends libgomp1 >/dev/null
    fi
fi

# --- Mosquitto (MQTT broker) on 127.0.0.1:1883 ------------------------------------------------
# The edge uplink, the MQTT/Sparkplug connectors and their tests need a real broker. Fault tests
# start their own `mosquitto` on a free loopback port (so they can kill and restart it); the
# others use this one.
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "services: installing mosquitto"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends mosquitto >/dev/null 2>&1; then
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q --no-install-recommends mosquitto >/dev/null
    fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-
}

if port_open 1883; then
    echo "services: mosquitto already listening on 127.0.0.1:1883"
else
    conf=/tmp/andon-mosquitto.conf
    cat >"$conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence false
CONF
    "$MOSQUITTO" -d -c "$conf"
    for _ in $(seq 1 50); do
        port_open 1883 && break
        sleep 0.1
    done
    port_open 1883 || { echo "services: mosquitto did not start" >&2; exit 1; }
    echo "services: mosquitto started on 127.0.0.1:1883"
fi

# --- NATS (the live bus's broker, andon.bus.nats_bus) on 127.0.0.1:4222 -------------------------
# The bus conformance suite runs every implementation; NATS is the broker-backed one.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    echo "services: installing nats-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends nats-server >/dev/null 2>&1; then
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q --no-install-recommends nats-server >/dev/null
    fi
fi
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)

if port_open 4222; then
    echo "services: nats already listening on 127.0.0.1:4222"
else
    nohup "$NATS_SERVER" -a 127.0.0.1 -p 4222 >/tmp/andon-nats.log 2>&1 &
    for _ in $(seq 1 50); do
        port_open 4222 && break
        sleep 0.1
    done
    port_open 4222 || { echo "services: nats did not start" >&2; exit 1; }
    echo "services: nats started on 127.0.0.1:4222"
fi
