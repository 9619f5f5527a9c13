#!/usr/bin/env bash
# scenario.sh — runs INSIDE a fresh Debian 12 system (container or chroot) as root, from a copy of
# the source tree: install.sh, checks, a second install.sh (upgrade), --uninstall, --uninstall --purge.
# Prints one "ok"/"not ok" line per check and ends with "N passed, M failed"; exit 1 on a failure.
# With POCKETCODER_SCENARIO_TESTS="SUITE...", the installed system also runs the project's own
# `tests/run SUITE...` (POCKETCODER_TESTS_MUST_WORK=1), each of its cases one check.
# Started by tests/install/nspawn-test.sh; see docs/install.md.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

passed=0 failed=0
log=/tmp/install-scenario
mkdir -p "$log"

check() { # check DESCRIPTION COMMAND...
        local desc=$1
        shift
        if "$@" >"$log/check.out" 2>&1; then
                passed=$((passed + 1))
                echo "ok - $desc"
        else
                failed=$((failed + 1))
                echo "not ok - $desc"
                sed 's/^/#   /' "$log/check.out" | tail -n 30
        fi
}

tally() { # tally ok|fail DESCRIPTION: a check decided elsewhere
        if [ "$1" = ok ]; then
                passed=$((passed + 1))
                echo "ok - $2"
        else
                failed=$((failed + 1))
                echo "not ok - $2"
        fi
}

mode_is() { [ "$(stat -c '%a %U %G' "$1")" = "$2" ]; }
output_has() { grep -qF -- "$2" "$log/$1.out"; }
daemon_pid() {
        if [ -d /run/systemd/system ]; then
                systemctl show -p MainPID --value pocketcoderd
        else
                cat /run/pocketcoder/pocketcoderd.pid
        fi
}
running_pocketcoderd() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = pocketcoderd ]; }
not() { ! "$@"; }
http_code() { # http_code PATH EXPECTED
        [ "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/pocketcoder/api.sock "http://x$1")" = "$2" ]
}
installed_checks() {
        check "pocketcoderd and pocketcoder are in /usr/local/bin" test -x /usr/local/bin/pocketcoderd -a -x /usr/local/bin/pocketcoder
        check "pocketcoder status answers" pocketcoder status
        check "GET /v1/health over the unix socket is 200" http_code /v1/health 200
        check "GET /v1/status over the unix socket is 200 for root" http_code /v1/status 200
        check "api.sock is a socket, 0660 root:pocketcoder" mode_is /run/pocketcoder/api.sock "660 root pocketcoder"
        check "/run/pocketcoder is 0750 root:pocketcoder" mode_is /run/pocketcoder "750 root pocketcoder"
        check "/var/lib/pocketcoder is 0700 root" mode_is /var/lib/pocketcoder "700 root root"
        check "/var/log/pocketcoder is 0750 root" mode_is /var/log/pocketcoder "750 root root"
        check "/etc/pocketcoder is 0755 root" mode_is /etc/pocketcoder "755 root root"
        check "state.db exists" test -f /var/lib/pocketcoder/state.db
        check "group pocketcoder exists" getent group pocketcoder
        # The SSH login (docs/ssh.md): a user of its own group, never the admins'.
        check "user pocketcoder is in group pocketcoder-ssh only" test "$(id -Gn pocketcoder)" = pocketcoder-ssh
        check "the sshd drop-in is installed and sshd -t accepts it" \
                sh -c 'grep -q "ForceCommand /usr/local/bin/pocketcoder ssh" /etc/ssh/sshd_config.d/pocketcoder.conf && /usr/sbin/sshd -t'
        check "the SSH gateway socket is 0660 root:pocketcoder-ssh" mode_is /run/pocketcoder-ssh.sock "660 root pocketcoder-ssh"
        # A system without systemd (minbase) has no systemd-analyze: install.sh installs the unit unverified.
        if command -v systemd-analyze >/dev/null; then
                check "systemd-analyze verify of the installed unit" systemd-analyze verify /etc/systemd/system/pocketcoderd.service
        else
                check "the unit is installed (no systemd-analyze here to verify it)" test -s /etc/systemd/system/pocketcoderd.service
        fi
        if [ -f daemon/pocketcoder.conf ]; then
                check "/etc/pocketcoder/pocketcoder.conf is installed" test -f /etc/pocketcoder/pocketcoder.conf
        fi
        if ls /usr/local/share/pocketcoder/policies/*.policy >/dev/null 2>&1; then
                check "shipped policies are copied to /etc/pocketcoder/policies" \
                        cmp /usr/local/share/pocketcoder/policies/default.policy /etc/pocketcoder/policies/default.policy
        fi
        if [ -d /run/systemd/system ]; then
                check "systemd: pocketcoderd.service is active" systemctl is-active pocketcoderd
                check "systemd: pocketcoderd.service is enabled" systemctl is-enabled pocketcoderd
                check "systemd: status" systemctl status --no-pager pocketcoderd
        else
                check "no systemd: the pid file names a running pocketcoderd" running_pocketcoderd "$(daemon_pid)"
                check "no systemd: the daemon logs to /var/log/pocketcoder/pocketcoderd.log" test -s /var/log/pocketcoder/pocketcoderd.log
        fi
}

if [ -d /run/systemd/system ]; then echo "# systemd is PID 1"; else echo "# systemd is not PID 1"; fi

# 1. fresh install
./install.sh >"$log/install1.out" 2>&1
rc=$?
sed 's/^/#   /' "$log/install1.out" | grep -v '^#   \[' | tail -n 40
check "install.sh exits 0" test $rc = 0
check "install.sh shows progress lines" output_has install1 "==> installing packages"
check "install.sh prints the socket path" output_has install1 /run/pocketcoder/api.sock
check "install.sh prints how to create an admin token" output_has install1 "sudo pocketcoder token create --role admin"
installed_checks
check "an admin token can be created" pocketcoder token create --role admin
# What an admin does next: a sandbox under the installed daemon (systemd's Delegate=yes cgroup, or the
# directly started daemon), a command inside as the agent, and removal.
# A test container may forbid what sandboxes need (a chroot cannot create user namespaces; nspawn on a
# cgroup v1 host mounts the hierarchies read-only): there, creation must fail naming what is missing.
if pocketcoder --json status | tr -d ' \n' | grep -q '"controllers":{"memory":true,"pids":true,"cpu":true}' &&
        pocketcoder --json status | tr -d ' \n' | grep -q '"user":true'; then
        check "a sandbox can be created" pocketcoder sandbox create smoke --network loopback
        sandbox_uid() { [ "$(pocketcoder sandbox run smoke -- id -u)" = 1000 ]; }
        check "a command runs in the sandbox as the agent" sandbox_uid
        check "the sandbox is removed with its workspace" pocketcoder sandbox rm smoke --purge
else
        echo "# this system cannot host sandboxes (see pocketcoder status); checking the refusal instead"
        refused() { ! pocketcoder sandbox create smoke 2>"$log/refusal.out" && grep -Eq "namespaces|cgroup" "$log/refusal.out"; }
        check "creating a sandbox fails, naming the missing feature" refused
fi
# The README's second command, on the installed system: every case of tests/run is a check here.
if [ -n "${POCKETCODER_SCENARIO_TESTS:-}" ]; then
        # shellcheck disable=SC2086 # a list of suites
        POCKETCODER_TESTS_MUST_WORK=1 POCKETCODER_TESTS_VERBOSE=1 tests/run $POCKETCODER_SCENARIO_TESTS \
                >"$log/tests-run.out" 2>&1 </dev/null
        rc=$?
        while IFS= read -r line; do
                case $line in
                "    ok "*) tally ok "tests/run: ${line#    ok }" ;;
                "    FAIL "* | "    SKIP "*) tally fail "tests/run: ${line#    [FS][AK][II][LP] }" ;;
                esac
        done <"$log/tests-run.out"
        check "tests/run $POCKETCODER_SCENARIO_TESTS exits 0 ($(tail -n 1 "$log/tests-run.out"))" test $rc = 0
        [ $rc = 0 ] || grep -v '^    ok ' "$log/tests-run.out" | tail -n 80 | sed 's/^/#   /'
fi
pid1=$(daemon_pid)

# 2. second run: upgrade in place, restart, keep the admin's edits
if [ -f /etc/pocketcoder/pocketcoder.conf ]; then
        echo "# edited by the admin" >>/etc/pocketcoder/pocketcoder.conf
fi
# a file the "previous version" installed and this one does not; and a damaged manifest line
# naming a file install.sh does not own
touch /usr/local/share/pocketcoder/obsolete-file /root/not-ours
printf '%s\n' /usr/local/share/pocketcoder/obsolete-file /root/not-ours >>/usr/local/share/pocketcoder/installed-files
./install.sh >"$log/install2.out" 2>&1
rc=$?
sed 's/^/#   /' "$log/install2.out" | grep -v '^#   \[' | tail -n 25
check "second install.sh exits 0" test $rc = 0
check "second install.sh installs no package" output_has install2 "packages already installed"
pid2=$(daemon_pid)
check "second install.sh restarted the daemon (pid $pid1 -> $pid2)" test "$pid1" != "$pid2"
installed_checks
check "the token created before the upgrade is still listed" pocketcoder token list
check "a file the previous version installed and this one does not is removed" not test -e /usr/local/share/pocketcoder/obsolete-file
check "a manifest line outside what install.sh owns is ignored" test -e /root/not-ours
if [ -f /etc/pocketcoder/pocketcoder.conf ]; then
        check "the admin's edit to pocketcoder.conf is kept" grep -q "edited by the admin" /etc/pocketcoder/pocketcoder.conf
        check "the shipped pocketcoder.conf is put beside it as .dist" test -f /etc/pocketcoder/pocketcoder.conf.dist
fi

# 3. uninstall keeps configuration and state
./install.sh --uninstall >"$log/uninstall.out" 2>&1
rc=$?
sed 's/^/#   /' "$log/uninstall.out"
check "install.sh --uninstall exits 0" test $rc = 0
check "the daemon is stopped" not running_pocketcoderd "$pid2"
check "binaries are removed" not test -e /usr/local/bin/pocketcoderd -o -e /usr/local/bin/pocketcoder
check "the unit is removed" not test -e /etc/systemd/system/pocketcoderd.service
check "the sshd drop-in is removed" not test -e /etc/ssh/sshd_config.d/pocketcoder.conf
check "/usr/local/share/pocketcoder is removed" not test -e /usr/local/share/pocketcoder
check "/etc/pocketcoder and /var/lib/pocketcoder/state.db are kept" test -d /etc/pocketcoder -a -f /var/lib/pocketcoder/state.db
if [ -d /run/systemd/system ]; then
        check "systemd no longer knows the unit" not systemctl cat pocketcoderd
fi

# 4. purge
./install.sh --uninstall --purge >"$log/purge.out" 2>&1
rc=$?
check "install.sh --uninstall --purge exits 0" test $rc = 0
check "configuration, state and logs are removed" not test -e /etc/pocketcoder -o -e /var/lib/pocketcoder -o -e /var/log/pocketcoder
check "group pocketcoder is removed" not getent group pocketcoder
check "the SSH user and its group are removed" not getent passwd pocketcoder

echo "$passed passed, $failed failed"
[ $failed = 0 ]
