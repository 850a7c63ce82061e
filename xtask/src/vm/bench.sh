# Sourced by the guest's /init when the kernel command line says
# inotify_trace_bench=ROUNDS: the cost of each attach mode, in a guest whose
# clock counts instructions (QEMU -icount shift=0: 1 virtual ns per
# instruction), one vCPU. Configurations are interleaved round by round:
# none, the first tracepoint mode that loads, fexit. Each round measures a
# getppid loop (the tax on a syscall that is not traced) and an add_watch
# loop (the traced call, the tracer consuming every event), and the tracer's
# CPU over it. One `@@vm bench` line per measurement.
mkdir -p /tmp/bench/dir
calls=${inotify_trace_bench_calls:-20000}
for round in $(seq "$inotify_trace_bench"); do
    for mode in none tracepoint fexit; do
        tracer=
        if [ "$mode" != none ]; then
            inotify-trace --attach "$mode" --json --comm inotify-load >/dev/null 2>/tmp/bench/err &
            tracer=$!
            until grep -q '^inotify-trace: attached' /tmp/bench/err; do
                if ! kill -0 "$tracer" 2>/dev/null; then
                    say bench "$mode" "$round" refused "$(tail -n 1 /tmp/bench/err)"
                    continue 2
                fi
                sleep 0.1
            done
        fi
        getppid=$(inotify-load getppid $((calls * 10)))
        before=$( [ -n "$tracer" ] && awk '{print $14 + $15}' /proc/$tracer/stat || echo 0)
        add=$(inotify-load add-loop "$calls" /tmp/bench/dir)
        after=$( [ -n "$tracer" ] && awk '{print $14 + $15}' /proc/$tracer/stat || echo 0)
        say bench "$mode" "$round" getppid "$getppid" add "$add" tracer_ticks $((after - before))
        if [ -n "$tracer" ]; then
            kill -INT "$tracer"
            wait "$tracer"
        fi
    done
done
