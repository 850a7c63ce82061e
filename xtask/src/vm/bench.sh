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
