#!/bin/bash
# SPDX-License-Identifier: MIT
#
# build-image.sh: builds a Debian root filesystem for PocketCoder sandboxes with debootstrap.
#
#   build-image.sh --state-dir DIR --name NAME [--suite bookworm] [--packages a,b]
#                  [--mirror URL] [--variant minbase]
#
# The image ends up in DIR/images/NAME (the root filesystem itself, plus image.json describing it). It is
# built in a temporary directory beside the target and renamed into place only when complete, so a failed
# or interrupted build leaves nothing behind. Every mount the build needs (debootstrap's /proc and /sys,
# apt's /proc and /dev) is made in a private mount namespace that dies with the build, so nothing leaks
# onto the host either. Run by 'pocketcoder image build'; see rootfs/README.md.
set -euo pipefail
shopt -s nullglob

prog=${0##*/}
state_dir=
name=
suite=bookworm
packages=
mirror=
variant=minbase

usage() {
        cat <<EOF
Usage: $prog --state-dir DIR --name NAME [--suite SUITE] [--packages a,b,...]
                      [--mirror URL] [--variant minbase|buildd|default]

Builds a Debian root filesystem with debootstrap into DIR/images/NAME.

  --state-dir DIR   PocketCoder's state directory (images go to DIR/images)
  --name NAME       image name: lowercase letters, digits and '-', at most 63 characters
  --suite SUITE     Debian suite (default bookworm)
  --packages LIST   extra packages to install with apt, comma-separated
  --mirror URL      Debian mirror (default: the one apt uses, from /etc/apt/sources.list{,.d})
  --variant V       debootstrap variant (default minbase)
EOF
}

die() {
        echo "$prog: $*" >&2
        exit 1
}

usage_error() {
        echo "$prog: $*" >&2
        echo "Try '$prog --help'." >&2
        exit 2
}

while [[ $# -gt 0 ]]; do
        opt=$1
        val=
        case $opt in
        -h | --help)
                usage
                exit 0
                ;;
        --*=*)
                val=${opt#*=}
                opt=${opt%%=*}
                ;;
        --state-dir | --name | --suite | --packages | --mirror | --variant)
                [[ $# -ge 2 ]] || usage_error "option $opt needs a value"
                val=$2
                shift
                ;;
        *)
                usage_error "unknown argument \"$opt\""
                ;;
        esac
        case $opt in
        --state-dir) state_dir=$val ;;
        --name) name=$val ;;
        --suite) suite=$val ;;
        --packages) packages=$val ;;
        --mirror) mirror=$val ;;
        --variant) variant=$val ;;
        *) usage_error "unknown option \"$opt\"" ;;
        esac
        shift
done

# ---- validation: everything is checked before anything is created ----

[[ -n $state_dir ]] || usage_error "--state-dir is required"
[[ $state_dir == /* ]] || usage_error "--state-dir must be an absolute path (got \"$state_dir\")"
[[ -n $name ]] || usage_error "--name is required"
# The same rule as the daemon's name_is_valid(): the name becomes a path component and an API field.
if [[ ! $name =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
        usage_error "image name \"$name\" is invalid (expected lowercase letters, digits and '-', not at" \
                "either end, at most 63 characters)"
fi
# "host" is the built-in layout: an image of that name could never be selected.
[[ $name != host ]] || usage_error "image name \"host\" is reserved for the built-in host layout"
[[ $suite =~ ^[a-z][a-z0-9.-]{0,31}$ ]] || usage_error "suite \"$suite\" is invalid (e.g. bookworm, trixie)"
case $variant in
minbase | buildd) variant_args=(--variant="$variant") ;;
default) variant_args=() ;;
*) usage_error "variant \"$variant\" is not supported (expected minbase, buildd or default)" ;;
esac

# tmux is not optional: every sandbox runs its session in it.
pkg_list=(tmux)
if [[ -n $packages ]]; then
        IFS=',' read -r -a raw_pkgs <<<"$packages"
        for p in "${raw_pkgs[@]}"; do
                p=${p//[[:space:]]/}
                [[ -n $p ]] || continue
                # Debian package names (policy 5.6.1), optionally with =version or /release.
                [[ $p =~ ^[a-z0-9][a-z0-9+.-]+([=/][A-Za-z0-9.+~:-]+)?$ ]] ||
                        usage_error "package name \"$p\" is invalid"
                [[ " ${pkg_list[*]} " == *" $p "* ]] || pkg_list+=("$p")
        done
fi

# "  a \t b " -> "a b"
words() {
        local -a w
        read -r -a w <<<"$1"
        echo "${w[*]}"
}

# The first deb URI apt uses for SUITE (one-line sources.list or deb822 .sources files), skipping
# security and updates archives, which are not complete distributions.
apt_mirror() {
        local f line uris suites types
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [[ -r $f ]] || continue
                while read -r line; do
                        line=${line%%#*}
                        # deb [options] URI SUITE COMPONENTS...
                        if [[ $line =~ ^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+) ]]; then
                                if [[ ${BASH_REMATCH[3]} == "$suite" ]]; then
                                        echo "${BASH_REMATCH[2]}"
                                        return 0
                                fi
                        fi
                done <"$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
                [[ -r $f ]] || continue
                # deb822: stanzas separated by blank lines; fields Types, URIs, Suites.
                types='' uris='' suites='' enabled=yes
                while IFS= read -r line; do
                        if [[ -z ${line//[[:space:]]/} ]]; then
                                if [[ $enabled == yes && " $types " == *" deb "* && " $suites " == *" $suite "* &&
                                        -n $uris ]]; then
                                        echo "${uris%% *}"
                                        return 0
                                fi
                                types='' uris='' suites='' enabled=yes
                                continue
                        fi
                        case $line in
                        Types:*) types=$(words "${line#Types:}") ;;
                        URIs:*) uris=$(words "${line#URIs:}") ;;
                        Suites:*) suites=$(words "${line#Suites:}") ;;
                        Enabled:*) enabled=$(words "${line#Enabled:}") ;;
                        esac
                done < <(cat "$f"; echo) # a blank line ends the last stanza too
        done
        return 1
}

if [[ -z $mirror ]]; then
        mirror=$(apt_mirror) || mirror=http://deb.debian.org/debian
fi
[[ $mirror =~ ^(https?|file)://[^[:space:]\'\"]+$ ]] || usage_error "mirror \"$mirror\" is not an http(s) or file URL"

[[ $EUID -eq 0 ]] || die "building an image needs root (debootstrap creates device nodes and chroots)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
command -v unshare >/dev/null || die "unshare (util-linux) is not installed"

images=$state_dir/images
target=$images/$name
mkdir -p "$images"
chmod 0755 "$images"

# One build at a time per state directory, locked on the directory itself: no lock file to leave behind.
exec {lock_fd}<"$images"
flock -n "$lock_fd" || die "another image build is running in $images; try again when it is done"
[[ ! -e $target ]] || die "image \"$name\" already exists in $images; remove it first with 'pocketcoder image rm $name'"

work=
log=
cleanup() {
        local rc=$?
        if [[ -n ${work:-} && -d $work ]]; then
                if [[ $rc -ne 0 && -s $log ]]; then
                        echo "$prog: build failed; the last lines of the log:" >&2
                        tail -n 20 "$log" | sed 's/^/    /' >&2
                fi
                # Mounts lived in private namespaces that are gone; --one-file-system guards anyway.
                rm -rf --one-file-system "$work"
        fi
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
work=$(mktemp -d "$images/.build-$name.XXXXXX")
root=$work/root
log=$work/build.log

# Runs a command in a private mount namespace (its mounts die with it) and a pid namespace (daemons a
# maintainer script starts die with it).
isolated() {
        unshare --mount --propagation private --pid --fork --kill-child -- "$@"
}

# ---- 1. debootstrap ----

echo "==> debootstrap $suite ($variant) from $mirror"
# Only debootstrap's informational lines are shown, numbered; warnings and errors too. Everything goes
# to the log, whose tail is printed on failure.
set +e
isolated debootstrap "${variant_args[@]}" "$suite" "$root" "$mirror" 2>&1 |
        tee -a "$log" |
        awk '/^I: / { printf("  [%3d] %s\n", ++n, substr($0, 4)); fflush(); next }
             /^(W|E): / { print "  " $0; fflush() }'
rc=${PIPESTATUS[0]}
set -e
[[ $rc -eq 0 ]] || die "debootstrap failed (exit $rc)"

# ---- 2. extra packages ----

in_chroot() {
        # /proc and /dev for maintainer scripts; /dev is the host's, bound for the build only. The
        # inner script expands its own arguments.
        # shellcheck disable=SC2016
        isolated /bin/sh -c 'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" &&
                shift && exec chroot "$@"' sh "$root" "$root" "$@"
}

echo "==> installing packages: ${pkg_list[*]}"
# No service may start inside the build.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
set +e
{
        in_chroot env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q update &&
                in_chroot env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q -y \
                        --no-install-recommends -o Dpkg::Use-Pty=0 install "${pkg_list[@]}"
} 2>&1 | tee -a "$log" |
        awk '/^(Get|Setting up|Unpacking|E:|W:)/ { printf("  [%3d] %s\n", ++n, $0); fflush() }'
rc=${PIPESTATUS[0]}
set -e
[[ $rc -eq 0 ]] || die "installing packages failed (exit $rc)"
rm -f "$root/usr/sbin/policy-rc.d"


# ---- 3. what sandboxes expect of an image ----

echo "==> preparing the image for sandboxes"
# Mount points: the sandbox is assembled inside a user namespace where this image's files (owned by host
# root) belong to nobody, so it cannot create directories here; they must exist.
for d in workspace proc dev tmp run sys; do
        mkdir -p "$root/$d"
done
chmod 0755 "$root/workspace" "$root/proc" "$root/dev" "$root/run" "$root/sys"
chmod 1777 "$root/tmp"

# The agent user (uid/gid 1000, home /workspace), unless the image already has uid or gid 1000.
if ! awk -F: '$3 == 1000 { found = 1 } END { exit !found }' "$root/etc/group"; then
        echo "agent:x:1000:" >>"$root/etc/group"
        [[ ! -f $root/etc/gshadow ]] || echo "agent:!::" >>"$root/etc/gshadow"
fi
if ! awk -F: '$3 == 1000 { found = 1 } END { exit !found }' "$root/etc/passwd"; then
        echo "agent:x:1000:1000:agent:/workspace:/bin/bash" >>"$root/etc/passwd"
        [[ ! -f $root/etc/shadow ]] || echo "agent:*:$(($(date +%s) / 86400)):0:99999:7:::" >>"$root/etc/shadow"
fi

# Nothing of this host stays in the image: the sandbox writes its own hostname, hosts and resolv.conf.
echo localhost >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

# apt caches and indexes: large, stale soon, and apt update refetches them.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial/* \
        "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/apt/* \
        "$root/debootstrap"
mkdir -p "$root/var/lib/apt/lists/partial"
# The sandbox mounts its own minimal /dev; debootstrap's device nodes have no use in the image.
find "$root/dev" -mindepth 1 -delete

# ---- 4. metadata and the atomic switch ----

size_kib=$(du -sk --one-file-system "$root" | cut -f1)
size_bytes=$((size_kib * 1024))
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
json_str() {
        # The values were validated above (names, suite, URL): only '"' and '\' could need escaping.
        local s=${1//\\/\\\\}
        printf '"%s"' "${s//\"/\\\"}"
}
{
        printf '{\n'
        printf '  "name": %s,\n' "$(json_str "$name")"
        printf '  "suite": %s,\n' "$(json_str "$suite")"
        printf '  "variant": %s,\n' "$(json_str "$variant")"
        printf '  "mirror": %s,\n' "$(json_str "$mirror")"
        printf '  "packages": ['
        sep=
        for p in "${pkg_list[@]}"; do
                printf '%s%s' "$sep" "$(json_str "$p")"
                sep=', '
        done
        printf '],\n'
        printf '  "created": %s,\n' "$(json_str "$created")"
        printf '  "size": %d\n' "$size_bytes"
        printf '}\n'
} >"$root/image.json"
chmod 0644 "$root/image.json"
chmod 0755 "$root"

# rename(2) of a directory onto a name that does not exist (we hold the lock and checked) is atomic.
mv -T "$root" "$target"
sync -f "$target" 2>/dev/null || true

elapsed=$(($(date +%s) - started))
echo "==> done: $name, $((size_kib / 1024)) MiB, $elapsed s"
