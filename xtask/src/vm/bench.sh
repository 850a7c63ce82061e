# Sourced by the guest's /init when the kernel command line says
# inotify_trace_bench=ROUNDS: the cost of each attach mode, in a guest whose
# clock counts instructions (QEMU -icount shift=0: 1 virtual ns per
# instruction), one vCPU. Configurations are interleaved round by round:
# none, the first tracepoint mode that loads (with and without reading the
# inotify charge), fexit. Each round measures a
# getppid loop (the tax on a syscall that is not traced) and an add_watch
# loop (the traced call, the tracer recording every event, as `cargo xtask
# bench` runs it), and the tracer's CPU over it. With one vCPU the loops'
# times include whatever the tracer runs meanwhile, so each loop starts once
# the tracer has gone idle after attaching. One `@@vm bench` line per
# measurement.
mkdir -p /tmp/bench/dir
calls=${inotify_trace_bench_calls:-20000}
# The CPU ticks (user + system) of process $1 so far.
ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
# Waits until process $1 uses no CPU over 0.3 s (virtual time: cheap here).
settle() {
    [ -n "$1" ] || return 0
    a=$(ticks "$1")
    while sleep 0.3; b=$(ticks "$1"); [ "$a" != "$b" ]; do a=$b; done
}
for round in $(seq "$inotify_trace_bench"); do
    for mode in none tracepoint tracepoint-no-charge fexit; do
        tracer=
        if [ "$mode" != none ]; then
            charge=
            [ "$mode" = tracepoint-no-charge ] && charge=--no-charge
            inotify-trace --attach "${mode%-no-charge}" $charge -q --record /tmp/bench/rec --force \
                --comm inotify-load >/dev/null 2>/tmp/bench/err &
            tracer=$!
            until grep -q '^inotify-trace: attached' /tmp/bench/err; do
                if ! kill -0 "$tracer" 2>/dev/null; then
                    say bench "$mode" "$round" refused "$(tail -n 1 /tmp/bench/err)"
                    continue 2
                fi
                sleep 0.1
            done
        fi
        settle "$tracer"
        getppid=$(inotify-load getppid $((calls * 10)))
        settle "$tracer"
        before=$(ticks "$tracer")
        add=$(inotify-load add-loop "$calls" /tmp/bench/dir)
        settle "$tracer"
        after=$(ticks "$tracer")
        say bench "$mode" "$round" getppid "$getppid" add "$add" tracer_ticks $((after - before))
        if [ -n "$tracer" ]; then
            kill -INT "$tracer"
            wait "$tracer"
        fi
    done
done
# The agent at node scale (inotify_trace_bench_node=WATCHES,...): for each
# size one process holds that many watches (instances of up to 5,000
# directories each), and the agent runs twice, interleaved: with the counts
# kept by the kernel's events (fexit) and with every watch read from fdinfo
# (--no-kept-counts). Its CPU per snapshot (its own process_cpu_seconds_total:
# every thread's, here counted instructions) over the snapshots of
# inotify_trace_bench_node_seconds, and its peak RSS. Then the soak (inotify_trace_bench_soak=SECONDS): watchers
# coming and going while the agent reconciles every 2 s; every drift it
# found is said.
if [ -n "${inotify_trace_bench_node:-}" ]; then
    # The guest's own cap (from its RAM, ~15,000) is below the sizes; the
    # host's sysctls are not touched: this is the guest's kernel.
    echo 1048576 > /proc/sys/fs/inotify/max_user_watches
    metric() { wget -qO- http://127.0.0.1:9899/metrics 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
    # Starts the agent with $1 and waits for its first snapshot.
    start_agent() {
        inotify-trace agent --interval 1s --listen 127.0.0.1:9899 "$@" >/dev/null 2>/tmp/bench/agent-err &
        agent=$!
        until [ -n "$(metric inotify_trace_snapshots_total)" ]; do
            kill -0 "$agent" 2>/dev/null || { say bench agent-failed "$(tail -n 1 /tmp/bench/agent-err)"; return 1; }
            sleep 0.2
        done
    }
    stop_agent() { kill "$agent"; wait "$agent"; }
    for size in $(echo "$inotify_trace_bench_node" | tr , ' '); do
        dirs=$(( size < 5000 ? size : 5000 ))
        rm -f /tmp/bench/hold-in && mkfifo /tmp/bench/hold-in
        inotify-load hold-watches $(( size / dirs )) "$dirs" /tmp/bench/node-$size \
            </tmp/bench/hold-in >/tmp/bench/hold-out &
        holder=$!
        exec 3>/tmp/bench/hold-in
        until grep -q ready /tmp/bench/hold-out; do sleep 0.2; done
        watches=$(awk '{print $2}' /tmp/bench/hold-out)
        for round in $(seq "$inotify_trace_bench"); do
            for mode in kept scan; do
                flag=--reconcile-every=1h
                [ "$mode" = scan ] && flag=--no-kept-counts
                start_agent "$flag" || continue
                kept=$(metric inotify_trace_snapshot_kept_counts)
                n0=$(metric inotify_trace_snapshots_total); c0=$(metric process_cpu_seconds_total)
                sleep "${inotify_trace_bench_node_seconds:-10}"
                n1=$(metric inotify_trace_snapshots_total); c1=$(metric process_cpu_seconds_total)
                hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$agent/status")
                stop_agent
                say bench node "$watches" "$mode" "$round" kept "$kept" snapshots $((n1 - n0)) \
                    cpu_ns "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", (b - a) * 1e9 }')" hwm_kb "$hwm"
            done
        done
        exec 3>&-
        wait "$holder"
        rm -rf /tmp/bench/node-$size
    done
    if [ -n "${inotify_trace_bench_soak:-}" ]; then
        mkdir -p /tmp/bench/soak
        if start_agent --reconcile-every=2s; then
            turns=$(inotify-load churn "$inotify_trace_bench_soak" /tmp/bench/soak | awk '{print $2}')
            # One more reconciliation after the last watcher went.
            r0=$(metric inotify_trace_kept_reconciliations_total)
            until [ "$(metric inotify_trace_kept_reconciliations_total)" != "$r0" ]; do sleep 0.5; done
            say bench soak turns "$turns" kept "$(metric inotify_trace_snapshot_kept_counts)" \
                reconciliations "$(metric inotify_trace_kept_reconciliations_total)" \
                drift "$(metric inotify_trace_kept_drift_watches)" \
                drift_warnings "$(grep -c 'kept counts were' /tmp/bench/agent-err)"
            stop_agent
        fi
    fi
fi
