#!/bin/busybox sh
# The guest's /init (written by `cargo xtask vm`): mount what the tool needs,
# run each check of /t/checks one at a time, say each result on the console
# as one `@@vm` line, power off. Everything the runner reads starts `@@vm `.
/bin/busybox --install -s /bin
export PATH=/bin:/t HOME=/root CI=true INOTIFY_TRACE_BIN=/t/inotify-trace
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /root && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
say() { echo "@@vm $*"; }
say kernel "$(uname -r)" "$(uname -m)"
# The attach mode `auto` chooses here, and why.
mode=$(inotify-trace -v -d 1s --comm nobody-at-all 2>&1 | grep -o 'attach mode .*')
say mode "${mode:-none: $(inotify-trace -d 1s --comm nobody-at-all 2>&1 | tail -n 1)}"
while read -r suite test needs; do
    case "$needs:$mode" in
    exit:"attach mode exit"*|any:*) ;;
    *) say check "$suite::$test" skip "auto chose another mode"; continue ;;
    esac
    bin=/t/deps/$suite
    start=$(date +%s)
    if timeout 600 "$bin" --exact "$test" --test-threads=1 >/tmp/out 2>&1 \
        && grep -q '^test result: ok. 1 passed' /tmp/out; then
        say check "$suite::$test" ok $(( $(date +%s) - start ))
    else
        say check "$suite::$test" fail $(( $(date +%s) - start ))
        tail -n 40 /tmp/out | sed "s/^/@@vm out /"
    fi
done < /t/checks
say end
poweroff -f
