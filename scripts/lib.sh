#!/usr/bin/env bash
# scripts/lib.sh — shell functions shared by scripts/run and scripts/test.
#
# Sourced, not executed: `. scripts/lib.sh`. It gives the scripts one way to
# install a missing Debian package, pick a free loopback port, start and stop a
# private redis-server, and check for the Rust toolchain, so that both scripts
# work from a fresh machine that has only Rust on it.
#
# The functions never stop a process they did not start: a private Redis is
# stopped by the PID in its own pid file, never by name.

set -euo pipefail

# Messages go to stderr so they never mix with what a function prints as its
# result (free_port prints a number on stdout).
# A message must never stop a script: its reader (a pipe to tee, say) may be gone.
say() { printf '==> %s\n' "$*" >&2 || true; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# run_quiet <command...>: run a command with its output kept in a temporary
# file; show that output only if the command fails. Returns its exit status.
run_quiet() {
    local out status=0
    out=$(mktemp)
    "$@" >"$out" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        printf 'error: "%s" failed (exit %d); its output:\n' "$*" "$status" >&2
        cat "$out" >&2
    fi
    rm -f "$out"
    return "$status"
}

# have_cmd <command>: true if the command is on PATH or sits in /usr/sbin or
# /usr/bin (a non-root user's PATH often lacks /usr/sbin). A command found only
# there has its folder added to PATH so that `command -v` finds it afterwards.
have_cmd() {
    local cmd=$1 dir
    command -v "$cmd" >/dev/null 2>&1 && return 0
    for dir in /usr/sbin /usr/bin; do
        if [ -x "$dir/$cmd" ]; then
            export PATH="$PATH:$dir"
            return 0
        fi
    done
    return 1
}

# `apt-get update` runs at most once per script run, and only when a package
# has to be installed.
_JOBQ_APT_UPDATED=no

# ensure_pkg <command> <debian-package>: install the package unless the
# command is already there.
ensure_pkg() {
    local cmd=$1 pkg=$2
    local -a sudo=()

    have_cmd "$cmd" && return 0

    if ! command -v apt-get >/dev/null 2>&1; then
        die "'$cmd' is not installed and this is not a Debian/Ubuntu machine (no apt-get).
       Install '$cmd' (Debian package: $pkg) with your system's package manager, then run this again."
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            die "'$cmd' is not installed, and installing it needs root but sudo is missing.
       As root, run: apt-get install $pkg"
        fi
    fi

    say "installing $pkg (for '$cmd')"
    if [ "$_JOBQ_APT_UPDATED" = no ]; then
        run_quiet "${sudo[@]}" apt-get update ||
            die "apt-get update failed; cannot install $pkg"
        _JOBQ_APT_UPDATED=yes
    fi
    run_quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$pkg" ||
        die "could not install $pkg"

    have_cmd "$cmd" || die "installed $pkg but '$cmd' is still not found"
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        # Let the kernel pick: bind port 0 and read back what it chose.
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return 0
    fi
    # No python3: try ports from a random start until a connect is refused.
    local p tries
    for tries in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "found no free port after $tries tries"
}

# redis_pings <port>: true if a Redis server on 127.0.0.1:<port> answers PING.
# `timeout` guards against a listener there that is not Redis and never replies.
redis_pings() {
    local port=$1 reply
    reply=$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) || return 1
    [ "$reply" = PONG ]
}

# start_private_redis <port> <dir>: start our own redis-server on
# 127.0.0.1:<port>, keeping its data (append-only file plus the default RDB
# snapshots) in <dir>. It runs in the background; its PID is in <dir>/redis.pid
# and its log in <dir>/redis.log. Waits up to about 5 s for PONG.
#
# Debian's redis-server package also installs a system service; we never use
# it. This is always a separate process that belongs to the calling script.
start_private_redis() {
    local port=$1 dir=$2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd) # redis-server wants an absolute --dir
    local pidfile="$dir/redis.pid" logfile="$dir/redis.log"

    rm -f "$pidfile"
    : >"$logfile"

    # setsid puts Redis in its own session, so a Ctrl-C in the terminal reaches
    # the script (which stops the app first) but not Redis, which the script
    # stops afterwards. Redis writes its own PID to --pidfile even when it is
    # not daemonized, and removes the file when it shuts down.
    setsid redis-server \
        --bind 127.0.0.1 \
        --port "$port" \
        --dir "$dir" \
        --appendonly yes \
        --daemonize no \
        --pidfile "$pidfile" \
        </dev/null >>"$logfile" 2>&1 &
    local launched=$!

    local _
    for _ in $(seq 1 50); do
        # The pid file is written before Redis accepts connections, so both
        # together mean it is our Redis that answered, not some other server.
        if [ -f "$pidfile" ] && redis_pings "$port"; then
            say "private redis-server started on 127.0.0.1:$port (pid $(cat "$pidfile"), data in $dir)"
            return 0
        fi
        sleep 0.1
    done

    printf 'error: redis-server on 127.0.0.1:%s did not answer PING within 5 s; last lines of %s:\n' \
        "$port" "$logfile" >&2
    tail -n 20 "$logfile" >&2 || true
    if [ -f "$pidfile" ]; then
        stop_pid "$pidfile"
    else
        kill "$launched" 2>/dev/null || true
    fi
    return 1
}

# stop_pid <pidfile>: stop the one process whose PID is in <pidfile>: TERM,
# wait up to 5 s, then KILL. Does nothing if the file is missing or that
# process is already gone.
stop_pid() {
    local pidfile=$1 pid _
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! [[ "$pid" =~ ^[0-9]+$ ]]; then
        say "ignoring $pidfile: it does not hold a PID"
        return 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid still running 5 s after TERM; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# ensure_rust: the Rust toolchain is a prerequisite, not something we install.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        # Installed by rustup, but this shell's PATH was not updated.
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found. Install a Rust toolchain first (rustup: https://rustup.rs), then run this again."
}
