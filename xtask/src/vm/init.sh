#!/bin/busybox sh
# The guest's /init (written by `cargo xtask vm`): mount what the tool needs,
# run the checks of /t/checks one at a time, twice: with the attach mode
# `auto` chooses (fexit where the kernel allows it), then with the first
# tracepoint mode that loads (INOTIFY_TRACE_ATTACH=tracepoint); say each
# result on the console as one `@@vm` line; power off. Everything the runner
# reads starts `@@vm `.
/bin/busybox --install -s /bin
# INOTIFY_TRACE_GUEST: the tests that change the machine's own settings
# (the limits DaemonSet's sysctls) run only where it is set.
export PATH=/bin:/t HOME=/root CI=true INOTIFY_TRACE_BIN=/t/inotify-trace INOTIFY_TRACE_GUEST=1
# From the kernel command line: whether the fexit checks may accept a refusal.
export INOTIFY_TRACE_FEXIT="${inotify_trace_fexit:-}"
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
if [ -n "${inotify_trace_bench:-}" ]; then
    . /t/bench.sh
    say end
    poweroff -f
fi
# The attach mode chosen here, and why (-v's words).
mode_of() {
    m=$(inotify-trace -v -d 1s --comm nobody-at-all 2>&1 | grep -o 'attach mode .*')
    echo "${m:-none: $(inotify-trace -d 1s --comm nobody-at-all 2>&1 | tail -n 1)}"
}
say mode "$(mode_of)"
say tracepoint-mode "$(INOTIFY_TRACE_ATTACH=tracepoint mode_of)"
# Whether this kernel takes --attach exit (bpf_task_pt_regs, 5.15+).
exit_mode=no
inotify-trace -q -d 1ms --attach exit --comm nobody-at-all >/dev/null 2>&1 && exit_mode=yes
for pass in auto tracepoint; do
    while read -r suite test needs passes; do
        name="$suite::$test"
        if [ "$pass" = tracepoint ]; then
            [ "$passes" = both ] || continue
            name="$name@tracepoint"
        fi
        if [ "$needs" = exit ] && [ "$exit_mode" = no ]; then
            say check "$name" skip "the kernel refuses --attach exit"
            continue
        fi
        bin=/t/deps/$suite
        start=$(date +%s)
        # --include-ignored: a check ignored on hosts (it changes the
        # guest's sysctls) runs here.
        if INOTIFY_TRACE_ATTACH=$pass timeout 600 "$bin" --exact "$test" --test-threads=1 --include-ignored \
            >/tmp/out 2>&1 && grep -q '^test result: ok. 1 passed' /tmp/out; then
            say check "$name" ok $(( $(date +%s) - start ))
        else
            say check "$name" fail $(( $(date +%s) - start ))
            tail -n 40 /tmp/out | sed "s/^/@@vm out /"
        fi
    done < /t/checks
done
say end
poweroff -f
