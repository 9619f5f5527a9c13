#!/usr/bin/env bash
# nspawn-test.sh — test install.sh for real on fresh Debian 12 systems, as root:
#
#   tests/install/nspawn-test.sh [nspawn|chroot|minbase]...     (default: all three)
#
# nspawn:  boots a debootstrapped Debian 12 with systemd as PID 1 in systemd-nspawn and runs
#          tests/install/scenario.sh in it (install, checks, upgrade, uninstall, purge).
# chroot:  the same scenario in a plain chroot of the same system, where systemd is not PID 1, so
#          install.sh starts the daemon directly. Runs in a private mount namespace: its /proc, /sys,
#          /dev and /run mounts go away with it.
# minbase: the smallest Debian 12 (debootstrap --variant=minbase: no systemd, no /etc/tmpfiles.d) as a
#          container without systemd: the root of its own mount and pid namespaces (pivot_root, not
#          chroot, so the kernel lets it create user namespaces, and sandboxes work), the scenario as
#          its PID 1. There the scenario also runs the project's own `tests/run debug` with
#          POCKETCODER_TESTS_MUST_WORK=1, each of its cases one check.
# The debootstrap bases are cached in /var/tmp/pc-debootstrap-cache (about 250 and 210 MB, 1 minute
# each to make); downloaded .debs are cached there too. Each run copies a base, so it starts from a fresh
# system, and removes its copy at the end. tests/run runs all three modes as its `install` suite.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=/var/tmp/pc-debootstrap-cache
BASE=$CACHE/bookworm
MINBASE=$CACHE/bookworm-minbase
ARCHIVES=$CACHE/archives
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS='' NSPAWN_PID='' CONTAINER_PID=''
NSPAWN_CGROUPS=()
# Commands inside get a clean environment, as after a login.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)

say() { printf '==> %s\n' "$*"; }

# ensure_base DIR [DEBOOTSTRAP OPTIONS...]: a Debian 12 base system in DIR, made once.
ensure_base() {
        local base=$1
        shift
        [ -f "$base/.pc-base-ok" ] && return
        say "debootstrap bookworm into $base (cached for later runs)"
        rm -rf "$base.tmp"
        mkdir -p "$CACHE"
        debootstrap --variant=minbase "$@" bookworm "$base.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
                { tail -n 20 "$CACHE/debootstrap.log"; exit 1; }
        touch "$base.tmp/.pc-base-ok"
        mv "$base.tmp" "$base"
}

# make_rootfs DIR [BASE]: a fresh system in DIR (ROOTFS) with the source tree (no build dirs, no .git)
# in /root/pocketcoder.
make_rootfs() {
        ROOTFS=$1
        rm -rf "$ROOTFS"
        cp -a "${2:-$BASE}" "$ROOTFS"
        rm -f "$ROOTFS/.pc-base-ok"
        mkdir -p "$ROOTFS/root/pocketcoder" "$ARCHIVES/partial"
        tar -C "$SRC" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$ROOTFS/root/pocketcoder" -xf -
        cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
        echo pc-install-test >"$ROOTFS/etc/hostname"
}

cleanup() {
        if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
                if [ -n "$CONTAINER_PID" ]; then
                        nsenter -t "$CONTAINER_PID" -a systemctl poweroff >/dev/null 2>&1 || true
                fi
                timeout 60 tail -s 0.2 --pid="$NSPAWN_PID" -f /dev/null ||
                        { kill -TERM "$NSPAWN_PID" 2>/dev/null; timeout 30 tail -s 0.2 --pid="$NSPAWN_PID" -f /dev/null; } || true
        fi
        NSPAWN_PID='' CONTAINER_PID=''
        for c in "${NSPAWN_CGROUPS[@]}"; do
                [ -d "$c" ] && { find "$c" -depth -type d -exec rmdir {} + || true; }
        done
        NSPAWN_CGROUPS=()
        if [ -n "$ROOTFS" ]; then
                rm -rf "$ROOTFS"
                ROOTFS=
        fi
}
trap cleanup EXIT

test_nspawn() {
        local dir=/var/tmp/pc-nspawn console=/var/tmp/pc-nspawn.console notify=/var/tmp/pc-nspawn.notify rc=0 c line
        say "nspawn: fresh Debian 12 with systemd as PID 1"
        make_rootfs "$dir"
        # systemd-nspawn splits its own cgroup into payload/ and supervisor/; when it runs in the root
        # cgroup (no systemd on the host) nobody removes them afterwards: remember what to clean.
        NSPAWN_CGROUPS=()
        for c in /sys/fs/cgroup/{systemd,unified,.}/{payload,supervisor}; do
                [ -d "$(dirname "$c")" ] && [ ! -e "$c" ] && NSPAWN_CGROUPS+=("$c")
        done
        # systemd-nspawn says READY=1 on its own NOTIFY_SOCKET once the container's systemd has finished
        # booting (--notify-ready=yes): a small listener, bound before nspawn starts, turns that into a
        # line to read. An event, no polling.
        rm -f "$notify"
        coproc NOTIFY { exec /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
s.settimeout(300)
try:
    while b"READY=1" not in s.recv(4096).split(b"\n"):
        pass
    print("READY", flush=True)
except OSError:
    print("TIMEOUT", flush=True)
' "$notify"; }
        read -r line <&"${NOTIFY[0]}" && [ "$line" = bound ] || { echo "cannot listen on $notify"; return 1; }
        # --register=no --keep-unit: this host's PID 1 is not systemd, so there is no machined to
        # register with; --capability=all: pocketcoderd needs what it would have on a real host.
        NOTIFY_SOCKET=$notify systemd-nspawn -D "$dir" --register=no --keep-unit --boot --console=passive \
                --notify-ready=yes --capability=all --resolv-conf=copy-host \
                --bind="$ARCHIVES:/var/cache/apt/archives" --machine=pc-install-test </dev/null >"$console" 2>&1 &
        NSPAWN_PID=$!
        read -r line <&"${NOTIFY[0]}"
        rm -f "$notify"
        if [ "$line" != READY ]; then
                cat "$console"
                echo "the container did not report a finished boot (${line:-no answer})"
                return 1
        fi
        # The container's PID 1 is systemd-nspawn's child.
        CONTAINER_PID=$(awk '{print $1}' "/proc/$NSPAWN_PID/task/$NSPAWN_PID/children" 2>/dev/null)
        if [ -z "$CONTAINER_PID" ] || [ "$(cat "/proc/$CONTAINER_PID/comm" 2>/dev/null)" != systemd ]; then
                cat "$console"
                echo "no systemd in the container"
                return 1
        fi
        echo "    container PID 1 is host pid $CONTAINER_PID (systemd-nspawn pid $NSPAWN_PID)"
        echo "    boot: $(timeout 120 nsenter -t "$CONTAINER_PID" -a "${CLEAN_ENV[@]}" systemctl is-system-running --wait)"
        nsenter -t "$CONTAINER_PID" -a "${CLEAN_ENV[@]}" bash /root/pocketcoder/tests/install/scenario.sh || rc=$?
        if [ $rc != 0 ]; then
                nsenter -t "$CONTAINER_PID" -a "${CLEAN_ENV[@]}" systemctl --failed --no-pager || true
                nsenter -t "$CONTAINER_PID" -a "${CLEAN_ENV[@]}" journalctl -b -u pocketcoderd --no-pager | tail -n 40 || true
        fi
        cleanup
        [ $rc = 0 ] || { echo "--- console:"; tail -n 40 "$console"; }
        rm -f "$console"
        return $rc
}

test_chroot() {
        local dir=/var/tmp/pc-chroot rc=0 p
        say "chroot: fresh Debian 12, systemd not PID 1"
        make_rootfs "$dir"
        # A private mount namespace: every mount below, and the daemon's view of them, ends with it.
        # shellcheck disable=SC2016 # the script's variables are its own positional parameters
        unshare --mount --propagation private -- bash -euc '
                dir=$1; archives=$2; shift 2
                mount -t proc proc "$dir/proc"
                mount --rbind /sys "$dir/sys"
                mount --rbind /dev "$dir/dev"
                mount -t tmpfs -o mode=0755 tmpfs "$dir/run"
                mount -t tmpfs -o mode=1777 tmpfs "$dir/tmp"
                mount --bind "$archives" "$dir/var/cache/apt/archives"
                exec chroot "$dir" "$@"
        ' chroot-test "$dir" "$ARCHIVES" "${CLEAN_ENV[@]}" bash /root/pocketcoder/tests/install/scenario.sh || rc=$?
        # A daemon left behind by a failed scenario would keep the namespace and its mounts alive:
        # stop every process whose root is this chroot, by pid.
        for p in /proc/[0-9]*; do
                [ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] || continue
                echo "    stopping leftover process ${p#/proc/} ($(cat "$p/comm" 2>/dev/null)) in the chroot"
                kill -TERM "${p#/proc/}" 2>/dev/null || true
                timeout 10 tail -s 0.2 --pid="${p#/proc/}" -f /dev/null || kill -KILL "${p#/proc/}" 2>/dev/null || true
        done
        cleanup
        return $rc
}

test_minbase() {
        local dir=/var/tmp/pc-minbase rc=0
        say "minbase: minimal Debian 12, a container without systemd (own mount and pid namespaces)"
        make_rootfs "$dir" "$MINBASE"
        # The scenario is PID 1 of a new pid namespace: when it ends, the kernel ends whatever it left
        # behind (the daemon, sandboxes), and the mount namespace with its mounts goes too.
        # shellcheck disable=SC2016 # the script's variables are its own positional parameters
        unshare --mount --pid --fork --propagation private -- bash -euc '
                dir=$1; archives=$2; shift 2
                mount --bind "$dir" "$dir"
                mount -t proc proc "$dir/proc"
                mount --rbind /sys "$dir/sys"
                mount --rbind /dev "$dir/dev"
                mount -t tmpfs -o mode=0755 tmpfs "$dir/run"
                mount -t tmpfs -o mode=1777 tmpfs "$dir/tmp"
                mount --bind "$archives" "$dir/var/cache/apt/archives"
                cd "$dir"
                mkdir .old-root
                pivot_root . .old-root
                umount -l /.old-root
                rmdir /.old-root
                cd /
                exec "$@"
        ' minbase-test "$dir" "$ARCHIVES" "${CLEAN_ENV[@]}" POCKETCODER_SCENARIO_TESTS=debug \
                bash /root/pocketcoder/tests/install/scenario.sh || rc=$?
        cleanup
        return $rc
}

main() {
        local modes=("$@") m failed=()
        [ "$(id -u)" = 0 ] || { echo "nspawn-test.sh: run as root" >&2; exit 2; }
        [ ${#modes[@]} -gt 0 ] || modes=(nspawn chroot minbase)
        for m in "${modes[@]}"; do
                case $m in
                nspawn | chroot) ensure_base "$BASE" --include=systemd,systemd-sysv,dbus,ca-certificates ;;
                minbase) ensure_base "$MINBASE" ;;
                *) echo "nspawn-test.sh: unknown mode '$m' (nspawn, chroot, minbase)" >&2; exit 2 ;;
                esac
        done
        for m in "${modes[@]}"; do
                "test_$m" || failed+=("$m")
        done
        if [ ${#failed[@]} -gt 0 ]; then
                echo "install tests FAILED: ${failed[*]}"
                exit 1
        fi
        echo "install tests passed: ${modes[*]}"
}

main "$@"
