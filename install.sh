#!/usr/bin/env bash
# install.sh — build PocketCoder from this tree and install it as a running service.
#
#   sudo ./install.sh                      install, or upgrade in place and restart
#   sudo ./install.sh --uninstall          stop the daemon, remove what install.sh installed
#   sudo ./install.sh --uninstall --purge  ... and also /etc/pocketcoder, /var/lib/pocketcoder,
#                                          /var/log/pocketcoder, the pocketcoder group and the SSH user
#
# Options: --skip-packages (do not call apt-get), --help.
# Runs non-interactively on Debian 12. See docs/install.md for what it installs and why.
set -euo pipefail

PREFIX=/usr/local
BINDIR=$PREFIX/bin
SHAREDIR=$PREFIX/share/pocketcoder
MANIFEST=$SHAREDIR/installed-files
CONFDIR=/etc/pocketcoder
STATEDIR=/var/lib/pocketcoder
RUNDIR=/run/pocketcoder
LOGDIR=/var/log/pocketcoder
GROUP=pocketcoder
UNIT=pocketcoderd.service
UNIT_PATH=/etc/systemd/system/$UNIT
TMPFILES_PATH=/etc/tmpfiles.d/pocketcoder.conf
PIDFILE=$RUNDIR/pocketcoderd.pid
SOCKET=$RUNDIR/api.sock
START_TIMEOUT=90
# 'ssh -t pocketcoder@HOST SANDBOX' (docs/ssh.md): the SSH user, its own group (never the admins'), the
# daemon's gateway socket that group may use, and the sshd drop-in.
SSH_USER=pocketcoder
SSH_GROUP=pocketcoder-ssh
SSH_SOCKET=/run/pocketcoder-ssh.sock
SSHD_DROPIN=/etc/ssh/sshd_config.d/pocketcoder.conf

# Build and runtime packages (Debian 12 names). procps gives /bin/kill for the unit's ExecReload.
PACKAGES=(gcc libc6-dev meson ninja-build pkg-config
          libcap-dev libseccomp-dev libnl-3-dev libnl-route-3-dev libsqlite3-dev
          libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev nettle-dev libsystemd-dev
          tmux nftables iproute2 procps ca-certificates curl debootstrap sqlite3
          e2fsprogs mount # mkfs.ext4 for workspaces on disk images (mount: losetup, for tests)
          openssh-server) # the SSH login into sandboxes (sshd_config.d drop-in)

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$SRC/build-release

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

# sd_booted(): this directory exists only when systemd is PID 1.
have_systemd() { [ -d /run/systemd/system ]; }

install_packages() {
        local missing=() p
        for p in "${PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
        done
        if [ ${#missing[@]} -eq 0 ]; then
                note "all ${#PACKAGES[@]} packages already installed"
                return
        fi
        note "missing: ${missing[*]}"
        # One update: a fresh machine's package lists are absent or stale.
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
        local setup=(--buildtype=release --prefix="$PREFIX")
        if [ -f "$BUILD/build.ninja" ]; then
                # A build dir from an older tree or meson may not reconfigure: start it afresh then.
                meson setup --reconfigure "${setup[@]}" "$BUILD" "$SRC" >/dev/null ||
                        meson setup --wipe "${setup[@]}" "$BUILD" "$SRC" >/dev/null
        else
                rm -rf "$BUILD"
                meson setup "${setup[@]}" "$BUILD" "$SRC" >/dev/null
        fi
        ninja -C "$BUILD"
}

# Files installed by the previous run, one absolute path a line; only paths install.sh may own, so
# that a damaged manifest cannot make it delete anything else.
old_manifest() {
        local f
        [ -f "$MANIFEST" ] || return 0
        { grep -E "^($PREFIX/|$UNIT_PATH\$|$TMPFILES_PATH\$)" "$MANIFEST" || true; } | while read -r f; do
                if [ -L "$f" ] || [ ! -d "$f" ]; then echo "$f"; fi
        done
}

install_files() {
        local old new f
        old=$(old_manifest)
        meson install -C "$BUILD" --no-rebuild --quiet
        install -d -m 0755 "$SHAREDIR"
        # meson's own list of what it installed, so that --uninstall and the next upgrade know. It
        # also lists the directories it had to create: only files are ours to remove one by one.
        new=$(grep '^/' "$BUILD/meson-logs/install-log.txt" | while read -r f; do
                if [ -L "$f" ] || [ ! -d "$f" ]; then echo "$f"; fi
        done)
        printf '%s\n' "$new" "$UNIT_PATH" "$TMPFILES_PATH" "$MANIFEST" | sort -u >"$MANIFEST.new"
        mv "$MANIFEST.new" "$MANIFEST"
        # A file the previous version installed and this one does not would linger forever.
        while read -r f; do
                if [ -n "$f" ] && ! grep -qxF "$f" "$MANIFEST"; then
                        rm -f "$f"
                        note "removed obsolete $f"
                fi
        done <<<"$old"
        [ -x "$BINDIR/pocketcoderd" ] || die "meson install did not install $BINDIR/pocketcoderd"
        [ -x "$BINDIR/pocketcoder" ] || die "meson install did not install $BINDIR/pocketcoder"
        note "$(wc -l <"$MANIFEST") files, listed in $MANIFEST"
}

# Install SRC as DEST unless the admin already has DEST: never overwrite edits. A differing shipped
# version goes beside it as DEST.dist so the admin can merge.
install_config_file() {
        local src=$1 dest=$2 mode=$3
        if [ ! -e "$dest" ]; then
                install -m "$mode" "$src" "$dest"
                note "installed $dest"
        elif cmp -s "$src" "$dest"; then
                rm -f "$dest.dist"
        elif ! cmp -s "$src" "$dest.dist" 2>/dev/null; then
                install -m "$mode" "$src" "$dest.dist"
                note "kept your $dest; the shipped version differs and is in $dest.dist"
        else
                note "kept your $dest (shipped version in $dest.dist)"
        fi
}

setup_dirs_and_config() {
        local p conf
        getent group "$GROUP" >/dev/null || { groupadd --system "$GROUP"; note "created system group $GROUP"; }
        install -d -m 0755 "$CONFDIR" "$CONFDIR/policies"
        install -d -m 0700 "$STATEDIR"
        install -d -m 0750 "$LOGDIR"
        install -d -m 0750 -g "$GROUP" "$RUNDIR"
        chmod 0700 "$STATEDIR"
        chgrp "$GROUP" "$RUNDIR" && chmod 0750 "$RUNDIR"
        # /run is a tmpfs: recreate the runtime directory at every boot with the same owner and mode. A
        # system without systemd (a minimal container) has no /etc/tmpfiles.d yet: systemd-tmpfiles reads
        # the entry once systemd is installed there.
        install -d -m 0755 "$(dirname "$TMPFILES_PATH")"
        printf '# installed by PocketCoder install.sh\nd %s 0750 root %s -\n' "$RUNDIR" "$GROUP" >"$TMPFILES_PATH"

        conf=$SHAREDIR/pocketcoder.conf
        [ -f "$conf" ] || conf=$SRC/daemon/pocketcoder.conf
        if [ -f "$conf" ]; then
                install_config_file "$conf" "$CONFDIR/pocketcoder.conf" 0644
        else
                note "no shipped pocketcoder.conf: the daemon uses its built-in defaults"
        fi
        for p in "$SHAREDIR"/policies/*.policy; do
                [ -e "$p" ] || continue
                install_config_file "$p" "$CONFDIR/policies/$(basename "$p")" 0644
        done
}

# The SSH user and the sshd drop-in. The user's group is its own: a member of the admins' group would be
# an admin on api.sock. No password ('*': nothing matches it), /bin/sh to run sshd's ForceCommand, no
# home. Idempotent: an existing user is corrected, the drop-in rewritten.
setup_ssh() {
        local tmpl=$SHAREDIR/pocketcoder-sshd.conf.in
        [ -f "$tmpl" ] || tmpl=$SRC/daemon/pocketcoder-sshd.conf.in
        getent group "$SSH_GROUP" >/dev/null || { groupadd --system "$SSH_GROUP"; note "created system group $SSH_GROUP"; }
        if ! getent passwd "$SSH_USER" >/dev/null; then
                useradd --system --gid "$SSH_GROUP" --no-create-home --home-dir /nonexistent --shell /bin/sh \
                        --password '*' "$SSH_USER"
                note "created system user $SSH_USER (group $SSH_GROUP, no password)"
        else
                usermod --gid "$SSH_GROUP" --groups '' --shell /bin/sh --home /nonexistent --password '*' "$SSH_USER"
        fi
        install -d -m 0755 "$(dirname "$SSHD_DROPIN")"
        sed -e "s|@SSH_USER@|$SSH_USER|g" -e "s|@BINDIR@|$BINDIR|g" -e "s|@SSH_SOCKET@|$SSH_SOCKET|g" "$tmpl" \
                >"$SSHD_DROPIN.new"
        chmod 0644 "$SSHD_DROPIN.new"
        mv "$SSHD_DROPIN.new" "$SSHD_DROPIN"
        if command -v sshd >/dev/null || [ -x /usr/sbin/sshd ]; then
                mkdir -p /run/sshd
                /usr/sbin/sshd -t || die "sshd rejects its configuration with $SSHD_DROPIN (sshd -t)"
                note "$SSHD_DROPIN (sshd -t: ok)"
                if have_systemd && systemctl is-active --quiet ssh; then
                        systemctl reload ssh
                        note "reloaded ssh.service"
                fi
        else
                note "$SSHD_DROPIN (no sshd here: install openssh-server for SSH logins)"
        fi
}

install_unit() {
        sed "s|@BINDIR@|$BINDIR|g" "$SRC/daemon/pocketcoderd.service.in" >"$UNIT_PATH.new"
        chmod 0644 "$UNIT_PATH.new"
        mv "$UNIT_PATH.new" "$UNIT_PATH"
        if command -v systemd-analyze >/dev/null; then
                systemd-analyze verify "$UNIT_PATH" || die "systemd-analyze verify $UNIT_PATH failed"
                note "$UNIT_PATH (systemd-analyze verify: ok)"
        else
                note "$UNIT_PATH"
        fi
}

# The pid in PIDFILE if it is a running pocketcoderd (a stale file may name a reused pid).
pidfile_daemon() {
        local pid
        [ -f "$PIDFILE" ] || return 1
        pid=$(tr -dc 0-9 <"$PIDFILE")
        [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pocketcoderd ] || return 1
        echo "$pid"
}

stop_direct() {
        local pid
        pid=$(pidfile_daemon) || { rm -f "$PIDFILE"; return 0; }
        note "stopping pocketcoderd (pid $pid from $PIDFILE)"
        kill -TERM "$pid"
        # tail --pid waits for a process that is not our child; bounded by timeout.
        if ! timeout 30 tail -s 0.1 --pid="$pid" -f /dev/null; then
                note "pid $pid did not stop within 30 s, killing it"
                kill -KILL "$pid" 2>/dev/null || true
                timeout 5 tail -s 0.1 --pid="$pid" -f /dev/null || true
        fi
        rm -f "$PIDFILE"
}

start_daemon() {
        if have_systemd; then
                stop_direct # an instance started by an earlier run without systemd
                systemctl daemon-reload
                systemctl enable --quiet "$UNIT"
                # Type=notify: restart returns once the daemon has sent READY=1 (or failed).
                if ! timeout "$START_TIMEOUT" systemctl restart "$UNIT"; then
                        systemctl status --no-pager -l "$UNIT" >&2 || true
                        die "pocketcoderd did not start (journalctl -u $UNIT)"
                fi
                note "systemd: $UNIT enabled and (re)started"
        else
                stop_direct
                # The daemonising parent exits 0 only once the API socket answers.
                if ! timeout "$START_TIMEOUT" "$BINDIR/pocketcoderd" --daemonize --pid-file "$PIDFILE" \
                        --log-file "$LOGDIR/pocketcoderd.log"; then
                        tail -n 20 "$LOGDIR/pocketcoderd.log" >&2 2>/dev/null || true
                        die "pocketcoderd did not start (see $LOGDIR/pocketcoderd.log)"
                fi
                note "no systemd: started pocketcoderd directly (pid $(cat "$PIDFILE"), log $LOGDIR/pocketcoderd.log)"
                note "it will not start at boot: run the same command from your init system"
        fi
}

check_status() {
        if ! "$BINDIR/pocketcoder" status; then
                die "pocketcoderd started but 'pocketcoder status' failed"
        fi
}

do_install() {
        local skip_packages=$1
        if [ ! -f "$SRC/meson.build" ] || [ ! -f "$SRC/daemon/pocketcoderd.service.in" ]; then
                die "$SRC does not look like the PocketCoder source tree"
        fi
        if [ "$skip_packages" = 1 ]; then
                step "skipping packages (--skip-packages)"
        else
                step "installing packages"
                install_packages
        fi
        step "building (release) in $BUILD"
        build
        step "installing to $PREFIX"
        install_files
        step "creating group, directories and configuration"
        setup_dirs_and_config
        step "setting up SSH logins ($SSHD_DROPIN, user $SSH_USER)"
        setup_ssh
        step "installing $UNIT"
        install_unit
        step "starting pocketcoderd"
        start_daemon
        step "checking: pocketcoder status"
        check_status
        echo
        echo "PocketCoder is running. API socket: $SOCKET (group $GROUP)"
        echo "Create an admin token (shown once):  sudo pocketcoder token create --role admin"
        echo "Next: use it without sudo: sudo usermod -aG $GROUP \$USER, log in again, then run 'pocketcoder status'."
        echo "SSH into a sandbox's tmux: pocketcoder keys add ~/.ssh/id_ed25519.pub, then ssh -t $SSH_USER@HOST SANDBOX."
}

do_uninstall() {
        local purge=$1 f
        step "stopping pocketcoderd"
        if have_systemd && [ -f "$UNIT_PATH" ]; then
                systemctl disable --now --quiet "$UNIT" || true
                # KillMode=process leaves the sandboxes running: with the daemon gone, nothing could
                # manage them any more, so end whatever is left in the unit's cgroup.
                systemctl kill --signal=SIGKILL "$UNIT" 2>/dev/null || true
        fi
        stop_direct
        step "removing installed files"
        old_manifest | while read -r f; do rm -f "$f"; done
        rm -f "$BINDIR/pocketcoderd" "$BINDIR/pocketcoder" "$UNIT_PATH" "$TMPFILES_PATH" "$SSHD_DROPIN" "$SSH_SOCKET"
        if have_systemd && systemctl is-active --quiet ssh; then systemctl reload ssh || true; fi
        rm -rf "$SHAREDIR" "$PREFIX/libexec/pocketcoder" "$RUNDIR"
        if have_systemd; then
                systemctl daemon-reload
                systemctl reset-failed "$UNIT" 2>/dev/null || true
        fi
        if [ "$purge" = 1 ]; then
                step "purging configuration, state and logs"
                rm -rf "$CONFDIR" "$STATEDIR" "$LOGDIR"
                if getent group "$GROUP" >/dev/null; then groupdel "$GROUP"; fi
                if getent passwd "$SSH_USER" >/dev/null; then userdel "$SSH_USER"; fi
                if getent group "$SSH_GROUP" >/dev/null; then groupdel "$SSH_GROUP"; fi
                note "removed $CONFDIR $STATEDIR $LOGDIR, group $GROUP, user $SSH_USER and group $SSH_GROUP"
        else
                note "kept $CONFDIR, $STATEDIR and $LOGDIR (remove them with --uninstall --purge)"
        fi
        echo "PocketCoder is uninstalled."
}

main() {
        local mode=install purge=0 skip_packages=0 args="$*"
        while [ $# -gt 0 ]; do
                case $1 in
                --uninstall) mode=uninstall ;;
                --purge) purge=1 ;;
                --skip-packages) skip_packages=1 ;;
                -h | --help) usage; exit 0 ;;
                *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
                esac
                shift
        done
        [ "$purge" = 0 ] || [ "$mode" = uninstall ] || { echo "install.sh: --purge goes with --uninstall" >&2; exit 2; }
        [ "$(id -u)" = 0 ] || die "run as root: sudo $0 $args"
        if [ "$mode" = uninstall ]; then
                do_uninstall "$purge"
        else
                do_install "$skip_packages"
        fi
}

main "$@"
