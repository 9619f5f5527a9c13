#!/usr/bin/env bash
# Files API throughput: a 1 GiB file downloaded through GET /v1/sandboxes/NAME/files/PATH (unix socket and
# TCP with a token, curl to /dev/null) against `cat` to /dev/null and the same file served by nginx and by
# python3 -m http.server (when installed); then the listing of a 10,000-file directory (one page, and all of
# it through `pocketcoder files ls`). The page cache is warm for every reader (the file is read once first).
# Starts its own daemon (uid range 1174405120) in a temp dir; needs root.
#   bench/files.sh [BUILD_DIR] [SIZE_MIB]
set -euo pipefail
build=$(realpath "${1:-build}")
mib=${2:-1024}
tmp=$(mktemp -d /tmp/pc-bench-files.XXXXXX)
pidfile=$tmp/run/pocketcoderd.pid
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        if [ -f "$pidfile" ]; then
                curl -s --unix-socket "$tmp/run/api.sock" -X DELETE "http://pc/v1/sandboxes/fbench?purge=true" >/dev/null || true
                kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/conf" <<CONF
uid_range_base = 1174405120
sandbox_disk = none
state_reserve = 0
cgroup_parent = pc-bench-files
nft_table = pc_bench_files
CONF
"$build/pocketcoderd/pocketcoderd" --config "$tmp/conf" --state-dir "$tmp/state" --runtime-dir "$tmp/run" \
        --policy-dir "$tmp/pol" --listen 127.0.0.1:0 --log-file "$tmp/log" --pid-file "$pidfile" --daemonize
pid=$(cat "$pidfile")
port=$(grep -o '(port [0-9]*)' "$tmp/log" | tail -1 | tr -dc 0-9)
sock=$tmp/run/api.sock
export POCKETCODER_SOCKET=$sock
token=$("$build/cli/pocketcoder" token create --role relay 2>/dev/null)
curl -sf --unix-socket "$sock" -H 'Content-Type: application/json' -d '{"name":"fbench","network":"none"}' \
        http://pc/v1/sandboxes >/dev/null
ws=$tmp/state/workspaces/fbench
uid=$(( $(stat -c %u "$ws") ))
dd if=/dev/urandom of="$ws/big.bin" bs=1M count="$mib" status=none
chown "$uid:$uid" "$ws/big.bin"
cat "$ws/big.bin" >/dev/null

rate() { # MiB/s of a command that reads the whole file, best of 3
        local best=0 t0 t1 r
        for _ in 1 2 3; do
                t0=$(date +%s%N)
                "$@" >/dev/null || { echo failed; return; }
                t1=$(date +%s%N)
                r=$(( mib * 1000000000 / (t1 - t0) ))
                [ "$r" -gt "$best" ] && best=$r
        done
        echo "$best"
}
echo "$(nproc) CPUs; ${mib} MiB file; MiB/s, best of 3"
printf '%-34s %6s\n' "cat > /dev/null" "$(rate cat "$ws/big.bin")"
printf '%-34s %6s\n' "pocketcoderd, unix socket (curl)" \
        "$(rate curl -sf --unix-socket "$sock" -o /dev/null http://pc/v1/sandboxes/fbench/files/big.bin)"
printf '%-34s %6s\n' "pocketcoderd, TCP + token (curl)" \
        "$(rate curl -sf -H "Authorization: Bearer $token" -o /dev/null "http://127.0.0.1:$port/v1/sandboxes/fbench/files/big.bin")"
printf '%-34s %6s\n' "pocketcoder files get (to a file)" \
        "$(rate "$build/cli/pocketcoder" files get fbench big.bin "$tmp/out.bin")"
rm -f "$tmp/out.bin"
echo "pocketcoderd RSS after the downloads: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status), peak $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
if command -v nginx >/dev/null; then
        nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        mkdir -p "$tmp/nginx"
        cat >"$tmp/nginx/nginx.conf" <<NGINX
daemon off; user root; worker_processes 1; pid $tmp/nginx/pid; error_log $tmp/nginx/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx;
       fastcgi_temp_path $tmp/nginx; uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
       server { listen 127.0.0.1:$nport; root $ws; } }
NGINX
        nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" & pids+=($!)
        for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$nport/big.bin" && break; sleep 0.1; done
        printf '%-34s %6s\n' "nginx (sendfile on)" "$(rate curl -sf -o /dev/null "http://127.0.0.1:$nport/big.bin")"
fi
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server -b 127.0.0.1 -d "$ws" "$pport" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$pport/big.bin" && break; sleep 0.1; done
printf '%-34s %6s\n' "python3 -m http.server" "$(rate curl -sf -o /dev/null "http://127.0.0.1:$pport/big.bin")"

mkdir "$ws/many"
(cd "$ws/many" && seq -f 'f%05g' 0 9999 | xargs touch)
chown -R "$uid:$uid" "$ws/many"
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
echo "listing 10,000 files (ms, warm):"
ms curl -sf --unix-socket "$sock" "http://pc/v1/sandboxes/fbench/files/many?limit=10000" >/dev/null
printf '  %-32s %6s\n' "one page of 10,000 (curl)" "$(ms curl -sf --unix-socket "$sock" "http://pc/v1/sandboxes/fbench/files/many?limit=10000")"
printf '  %-32s %6s\n' "10 pages of 1,000 (curl)" "$(ms bash -c "c=; for i in \$(seq 10); do c=\$(curl -sf --unix-socket $sock \"http://pc/v1/sandboxes/fbench/files/many?limit=1000\${c:+&cursor=\$c}\" | sed -n 's/.*\"next_cursor\":\"\([^\"]*\)\".*/\1/p'); done")"
printf '  %-32s %6s\n' "pocketcoder files ls (table)" "$(ms "$build/cli/pocketcoder" files ls fbench many)"
printf '  %-32s %6s\n' "ls -l (for scale)" "$(ms ls -l "$ws/many")"
