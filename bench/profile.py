#!/usr/bin/env python3
"""Where a proxy's CPU time goes, kernel included: perf samples grouped into categories.

Starts one proxy in front of the nginx HTTP backend (modes keepalive and close, driven by wrk as
in bench/e2e.py) or the iperf3 server (mode bulk, driven by iperf3 as in bench/bulk.py), records
`perf record -e cpu-clock -g -p PID` on every thread of the proxy for the run (ringlb's io-wq
threads are threads of its process, so -p covers them; nginx: master and worker), and groups the
samples by the symbol they landed in, by the rules in CATEGORIES below (first match wins; edit
them there). The table gives each category's share of the proxy's samples and its CPU time per
request (per GiB for bulk), from the proxy's CPU time measured over the run in /proc/PID/stat
(perf's own sampling cost included). The top 15 symbols left in "other" are listed so the rules
can be improved.

  python3 bench/profile.py --proxy ringlb --mode close --conns 10 --seconds 10 --ringlb /tmp/ringlb-bench
  python3 bench/profile.py --proxy haproxy-splice-rr --mode bulk --streams 8 --reverse
  python3 bench/profile.py --proxy nginx --mode keepalive --conns 100

Samples of threads named iou-wrk-* (io_uring's io-wq workers) count as io-wq whatever their
symbol; a second table breaks them down by the other rules. cpu-clock is a timer interrupt,
which cannot fire while interrupts are off, so such a sample lands where interrupts come back on
(_raw_spin_unlock_irqrestore, finish_task_switch, ...): those, and samples in generic helpers
(xa_load, llist_*, rb_*, ...), are counted for the first caller in the call chain that is none of
these (TO_CALLER; --no-caller turns that off).
Writes the markdown to stdout and to --out/PROXY-MODE.md (default bench/results/profile).
"""
import argparse
import collections
import fnmatch
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (backend and proxy start-up, wrk, CPU accounting)
import bulk  # noqa: E402  (the iperf3 server and client)

PROXY_PORT = 18701
USER = "user space (proxy + libs)"
IOWQ = "io-wq"
OTHER = "other"
# Kernel symbols, first match wins (fnmatch patterns). Samples in user space (not in the kernel's
# dso) are USER before these; samples of iou-wrk-* threads are IOWQ.
CATEGORIES = [
    ("copies", ["copy_user*", "*copy_to_user*", "*copy_from_user*", "_copy_to_iter", "_copy_from_iter",
                "copy_page_*_iter", "skb_copy_datagram*", "__skb_datagram_iter", "simple_copy_to_iter",
                "memcpy*", "__memcpy*", "__pi_memcpy", "memmove*", "__memmove*", "rep_movs*",
                "__check_object_size", "check_heap_object", "check_stack_object", "__virt_addr_valid",
                "csum_partial_copy*", "__put_user*", "__get_user*"]),
    (IOWQ, ["io_wq_*", "io_worker_*", "io_wqe_*", "create_io_worker", "io_wq*", "io_worker*"]),
    ("syscall entry/exit", ["entry_SYSCALL*", "do_syscall_64", "syscall_exit*", "__x64_sys_*", "ret_from_fork*",
                            "syscall_return_via_sysret", "entry_SYSRETQ*", "exit_to_user_mode*",
                            "syscall_enter_from_user_mode*", "x64_sys_call", "fpregs_*",
                            "switch_fpu*", "restore_fpregs*"]),
    ("splice/pipe", ["splice*", "*_splice_*", "*_sys_splice", "*_sys_vmsplice", "do_splice*", "__do_splice*", "pipe_*", "__pipe_*", "anon_pipe*",
                     "*splice_read", "*splice_write", "generic_pipe_buf_*", "page_cache_pipe_buf*", "get_pipe_info",
                     "wait_for_space"]),
    ("epoll", ["ep_*", "do_epoll*", "__ep_*", "epoll_*", "ep_poll*", "eventpoll_*"]),
    ("io_uring", ["io_*", "__io_*", "io_uring_*", "tctx_task_work*", "io_cqring*", "io_fill_cqe*",
                  "io_submit_sqes", "io_issue_sqe", "io_poll*", "io_req_task_work*", "io_ring_*",
                  "__do_sys_io_uring*", "kiocb_done"]),
    ("wake-ups/scheduling", ["try_to_wake_up", "schedule*", "__schedule", "pick_next*", "enqueue_*", "dequeue_*",
                             "finish_task_switch*", "*_wake_*", "wake_up*", "__wake_up*", "*wake_function",
                             "ttwu_*", "select_task_rq*", "update_curr*", "update_load_avg", "__update_load_avg*",
                             "set_next_entity", "put_prev_*", "check_preempt*", "wakeup_preempt*", "resched_curr*",
                             "__switch_to*", "switch_mm*", "prepare_task_switch", "update_rq_clock*",
                             "reweight_entity", "sched_*", "*_fair", "*_entity", "activate_task", "select_idle_*",
                             "available_idle_cpu", "psi_*", "__cgroup_account_cputime*", "cpuacct_charge",
                             "sock_def_readable", "sock_def_write_space", "sk_stream_write_space", "pollwake",
                             "native_sched_clock", "sched_clock*", "__calc_delta*", "update_min_vruntime",
                             "__enqueue_entity", "__dequeue_entity", "task_work_*", "raw_spin_rq_*", "task_sched_*", "kill_fasync"]),
    ("TCP/IP stack", ["tcp_*", "__tcp*", "tcp4_*", "ip_*", "__ip_*", "ipv4_*", "inet_*", "__inet_*", "sk_*",
                      "__sk_*", "skb_*", "__skb_*", "kfree_skb*", "__kfree_skb*", "consume_skb", "__alloc_skb",
                      "alloc_skb*", "napi_*", "__napi_*", "__build_skb*", "kmalloc_reserve", "__dev_queue_xmit",
                      "dev_hard_start_xmit", "loopback_xmit", "net_rx_action", "__netif_receive_skb*",
                      "netif_rx*", "__netif_rx", "process_backlog", "enqueue_to_backlog", "validate_xmit_*",
                      "eth_type_trans", "sock_*", "__sock_*", "lock_sock*", "release_sock", "__release_sock",
                      "dst_*", "nf_*", "raw_local_deliver", "ipt_*", "__xfrm*", "bpf_skops*", "__cgroup_bpf*",
                      "handle_softirqs", "__do_softirq", "do_softirq*", "__local_bh_enable_ip", "__sys_recvfrom",
                      "__sys_sendto", "__sys_recvmsg", "__sys_sendmsg", "___sys_*", "sockfd_lookup*",
                      "security_socket_*", "security_sk_*", "selinux_socket*", "apparmor_socket*",
                      "__inet_lookup*", "inet6_*", "tcp6_*", "minmax_*", "bictcp_*", "cubictcp_*",
                      "mem_cgroup_*sk*", "__sk_mem_*", "sk_mem_*", "__copy_skb_header", "csum_*", "__zerocopy*",
                      "bbr_*", "get_netmem", "put_netmem", "netif_*", "security_sock*", "dev_*", "__dev_*",
                      "fib_*", "__fib_*", "ip_route_*", "rt_*", "ipv4_dst_*", "do_tcp_*", "do_accept*",
                      "__sys_accept*", "__sys_connect*", "__sys_shutdown*", "__sys_setsockopt", "netlink_has_listeners"]),
    ("memory (slab/pages)", ["kmem_cache_*", "__kmem_cache_*", "kmalloc*", "__kmalloc*", "kfree*", "__slab_*",
                             "___slab_*", "slab_*", "__alloc_pages*", "alloc_pages*", "__free_pages*",
                             "free_unref_*", "__free_frozen_pages", "free_frozen_pages", "__put_page", "put_page",
                             "page_frag_*", "__page_frag_*", "folio_*", "__folio_*", "get_page*", "rmqueue*",
                             "__rmqueue*", "mod_memcg*", "__mod_memcg*", "memcg_*", "obj_cgroup_*", "refill_obj_stock",
                             "__memcg_*", "kvfree*", "kvmalloc*", "get_page_from_freelist", "*_frozen_page*",
                             "*_frozen_pages*", "free_pcppages_bulk", "free_unref_page*", "is_vmalloc_addr",
                             "*obj_stock*", "mod_objcg_*", "__account_obj*", "get_partial*", "get_any_partial",
                             "page_counter_*", "try_charge*", "__refill_stock", "drain_stock"]),
    ("locks/RCU", ["_raw_spin_*", "__raw_spin_*", "queued_spin_*", "native_queued_spin*", "__pv_queued_spin*",
                   "pv_*", "mutex_*", "__mutex_*", "osq_*", "__rcu_read_*", "rcu_*", "__rcu_*", "_raw_read_*",
                   "_raw_write_*", "up_*", "down_*", "__raw_callee_save_*", "__call_rcu*", "call_rcu*",
                   "lockref_*"]),
    ("timers/interrupts", ["hrtimer_*", "__hrtimer_*", "read_tsc", "ktime_get*", "native_read_msr*", "timekeeping_*",
                      "__mod_timer", "mod_timer", "timer_*", "__timer_*", "lapic_*", "tick_*", "clockevents_*",
                      "asm_sysvec_*", "sysvec_*", "__sysvec_*", "irq_*", "__irq_*", "native_apic_*", "kvm_clock*",
                      "pvclock_*", "native_write_msr*", "*_to_jiffies", "jiffies_*", "lock_timer_base"]),
    ("files/VFS", ["rw_verify_area", "fsnotify*", "__fsnotify*", "__fget*", "fget*", "fput*", "__fput*", "fdget*",
                   "security_file_*", "vfs_*", "new_sync_*", "file_*", "__f_unlock_pos", "do_sys_*", "ksys_*",
                   "iov_iter_*", "import_*", "rw_copy_check_uvector", "_copy_from_user_iter", "inode_*",
                   "alloc_file*", "init_file", "alloc_empty_file", "*file_free*", "bpf_inode_storage_free",
                   "d_alloc*", "dput", "iput", "evict", "*destroy_inode", "new_inode*", "get_unused_fd*",
                   "fd_install", "put_unused_fd", "file_close_fd*", "filp_close", "__close_range", "alloc_fd",
                   "__dentry_*", "dentry_*", "dnotify_*", "locks_remove_*", "do_iter_*", "do_writev", "do_readv",
                   "__import_iovec", "copy_iovec_from_user", "__d_alloc", "d_instantiate", "truncate_inode_*",
                   "__iget", "clear_inode"]),
]
# Samples in these are counted for the first caller in the call chain that is none of them:
# where interrupts come back on (a cpu-clock sample there stands for the time before, with them
# off), and generic helpers whose cost belongs to whoever called them.
TO_CALLER = ["_raw_spin_unlock_irqrestore", "_raw_spin_unlock_irq", "_raw_read_unlock_irqrestore",
             "_raw_write_unlock_irqrestore", "__raw_spin_unlock_irq*", "finish_task_switch*",
             "raw_spin_rq_unlock_irq*", "local_irq_restore", "arch_local_irq_restore",
             "llist_*", "xa_*", "xas_*", "rb_*", "__rb_*", "_find_*_bit", "__list_*_valid*", "memcmp", "memset*",
             "__memset*", "percpu_counter_*", "__percpu_counter_*", "srso_*", "__x86_indirect_thunk_*",
             "__x86_return_thunk", "refcount_*", "__refcount_*", "bsearch", "sort_r", "strlen", "strcmp"]


def matches(sym, patterns):
    return any(fnmatch.fnmatchcase(sym, p) for p in patterns)


def category_of(sym):
    for name, patterns in CATEGORIES:
        if matches(sym, patterns):
            return name
    return OTHER


def is_kernel(dso, addr):
    return dso.startswith("[kernel") or (len(addr) == 16 and addr.startswith("ffff"))


def parse_perf_script(lines):
    """Samples of `perf script -F comm,tid,ip,sym,dso`: (comm, [(addr, sym, dso)], leaf first).
    A sample is a line `COMM TID`, then one indented line `ADDR SYM (DSO)` per frame."""
    comm, frames = None, []
    for line in lines:
        if not line.strip() or not line[0].isspace():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            words = line.split()
            if len(words) >= 2 and words[-1].isdigit():
                comm = " ".join(words[:-1])
            continue
        parts = line.strip().split(None, 1)
        if comm is None or len(parts) < 2:
            continue
        sym, _, dso = parts[1].rpartition(" (")
        frames.append((parts[0], sym or parts[1], dso.rstrip(")") if sym else "[unknown]"))
    if comm is not None:
        yield comm, frames


def classify(samples, use_caller=True):
    """Counts of samples by category, by (category, symbol), by thread, and inside io-wq threads."""
    stats = {"total": 0, "moved": 0, "cat": collections.Counter(), "sym": collections.Counter(),
             "comm": collections.Counter(), "iowq": collections.Counter(), "unresolved": 0}
    for comm, frames in samples:
        if not frames:
            continue
        stats["total"] += 1
        addr, sym, dso = frames[0]
        label = sym
        if use_caller and matches(sym, TO_CALLER):
            caller = next((f for f in frames[1:] if not matches(f[1], TO_CALLER)), None)
            if caller:
                addr, sym, dso = caller
                label = f"{sym} < {frames[0][1]}"
                stats["moved"] += 1
        thread = "iou-wrk-*" if comm.startswith("iou-wrk-") else comm
        stats["comm"][thread] += 1
        if not is_kernel(dso, addr):
            cat, label = USER, f"{sym} ({os.path.basename(dso)})"
        else:
            if sym.startswith("0x") or sym == "[unknown]":
                stats["unresolved"] += 1
            cat = category_of(sym)
        if comm.startswith("iou-wrk-"):
            stats["iowq"][cat] += 1
            cat = IOWQ
        stats["cat"][cat] += 1
        stats["sym"][(cat, label)] += 1
    return stats


def start(args, tmp):
    """The backend and the proxy; returns the proxy's Popen."""
    if args.mode == "bulk":
        bulk.start_iperf_server(tmp)
        backend_port = bulk.IPERF_PORT
    else:
        e2e.start_backend(tmp, 1)
        backend_port = None
    extra = []
    if args.proxy == "ringlb":
        extra = args.ringlb_args.split()
        if args.mode == "bulk" and "--health-interval" not in extra:
            extra += ["--health-interval", "0s"]  # see bench/bulk.py
    elif args.proxy in bulk.HAPROXY_VARIANTS:
        extra = bulk.HAPROXY_VARIANTS[args.proxy]
    name = "haproxy" if args.proxy.startswith("haproxy") else args.proxy
    return e2e.start_proxy(name, tmp, 1, port=PROXY_PORT, extra=extra, backend_port=backend_port)


def run_load(args):
    """Runs the load; returns (work done, unit, description)."""
    if args.mode == "bulk":
        r = bulk.run_iperf(PROXY_PORT, args.streams, args.reverse, args.seconds)
        if r.get("error") or not r["bytes"]:
            sys.exit(f"iperf3 failed: {r.get('error')}")
        return (r["bytes"] / bulk.GIB, "GiB",
                f"iperf3 -P {args.streams}{' -R' if args.reverse else ''} for {args.seconds} s: "
                f"{r['bytes'] / bulk.GIB:.2f} GiB, {r['gbps']:.2f} Gbit/s")
    r = e2e.run_wrk(PROXY_PORT, args.mode, args.conns, args.seconds, 1, None)
    if not r["requests"]:
        sys.exit("wrk made no requests")
    return (r["requests"], "request",
            f"wrk -c{args.conns} {args.mode} for {args.seconds} s: {r['requests']:,} requests, "
            f"{r['rps']:,.0f} req/s, {r['socket_errors'] + r['non2xx']} errors")


def report(stats, cpu_s, work, unit, meta):
    total = max(1, stats["total"])
    per, scale = ("µs", 1e6) if unit == "request" else ("ms", 1e3)

    def cost(n):
        return e2e.fmt(cpu_s * n / total * scale / work, 2)
    out = [f"# Where {meta['proxy']}'s CPU time goes: {meta['mode']}", "", f"Command: `{meta['command']}`", "",
           f"Load: {meta['load']}. Proxy CPU (user + system, /proc): {cpu_s:.2f} s, "
           f"{cost(total)} {per} per {unit}. perf: {stats['total']:,} samples. {meta['machine']}."]
    if stats["moved"]:
        out.append(f"{100 * stats['moved'] / total:.1f}% of the samples landed where interrupts come back on, "
                   "or in a generic helper, and are counted for their caller (`caller < symbol`).")
    if stats["unresolved"]:
        out.append(f"{100 * stats['unresolved'] / total:.1f}% of the samples had no kernel symbol (kptr_restrict?).")
    out += ["", f"| category | % of samples | {per} per {unit} |", "|---|---|---|"]
    order = [USER] + [c for c, _ in CATEGORIES] + [OTHER]
    for cat in order:
        n = stats["cat"].get(cat, 0)
        if n:
            out.append(f"| {cat} | {100 * n / total:.1f} | {cost(n)} |")
    out.append(f"| **total** | {100 * sum(stats['cat'].values()) / total:.1f} | {cost(total)} |")
    out += ["", "## Threads", "", "| thread | % of samples |", "|---|---|"]
    main = meta["main"] if meta["proxy"] == "ringlb" else None  # its main thread is the acceptor
    out += [f"| {c}{' (main thread: the acceptor)' if c == main else ''} | {100 * n / total:.1f} |"
            for c, n in stats["comm"].most_common()]
    if stats["iowq"]:
        n_iowq = sum(stats["iowq"].values())
        out += ["", "## Inside the io-wq threads", "", f"| category | % of io-wq samples | {per} per {unit} |",
                "|---|---|---|"]
        out += [f"| {c} | {100 * n / n_iowq:.1f} | {cost(n)} |" for c, n in stats["iowq"].most_common()]
    for title, pick in ((f'Top 15 symbols in "{OTHER}"', lambda c: c == OTHER), ("Top 15 symbols", lambda c: True)):
        syms = [(k, n) for k, n in stats["sym"].most_common() if pick(k[0])][:15]
        if syms:
            out += ["", f"## {title}", "", "| symbol | category | % of samples |", "|---|---|---|"]
            out += [f"| `{s}` | {c} | {100 * n / total:.2f} |" for (c, s), n in syms]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", choices=["ringlb", "nginx"] + list(bulk.HAPROXY_VARIANTS), default="ringlb",
                    help="haproxy-splice: option splice-auto (HAProxy 2.6 did not splice with it here); "
                    "haproxy-splice-rr: option splice-request and splice-response")
    ap.add_argument("--mode", choices=("keepalive", "close", "bulk"), default="close")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=100, help="wrk connections (keepalive, close)")
    ap.add_argument("--streams", type=int, default=1, help="iperf3 -P (bulk)")
    ap.add_argument("--reverse", action="store_true", help="iperf3 -R: the server sends (bulk)")
    ap.add_argument("--ringlb", help="ringlb binary (default: build this tree's, bazel -c opt)")
    ap.add_argument("--ringlb-args", default="", help="more ringlb arguments, one string")
    ap.add_argument("--freq", type=int, default=4000, help="perf samples per second of CPU (perf -F)")
    ap.add_argument("--no-caller", action="store_true",
                    help="count samples in TO_CALLER symbols for that symbol, not its caller")
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "profile"))
    ap.add_argument("--keep", help="keep perf.data at this path (for perf report by hand)")
    args = ap.parse_args()
    if os.geteuid() != 0 and int(open("/proc/sys/kernel/perf_event_paranoid").read()) > 1:
        sys.exit("perf needs kernel samples: run as root or sysctl kernel.perf_event_paranoid=1")
    if args.proxy == "ringlb":
        if args.ringlb:
            e2e.RINGLB = os.path.abspath(args.ringlb)
        else:
            e2e.build_ringlb()
    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGTERM, e2e.on_signal)
    e2e.raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="ringlb-profile-")
    data = args.keep or os.path.join(tmp, "perf.data")
    try:
        proc = start(args, tmp)
        time.sleep(0.5)
        pids = e2e.process_tree(proc.pid)
        main_comm = open(f"/proc/{proc.pid}/comm").read().strip()
        perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(args.freq), "-g", "-o", data,
                                 "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        e2e.children.append(perf)  # stopped (and its data written) if anything below fails
        time.sleep(1.0)  # perf attaches to every thread
        if perf.poll() is not None:
            sys.exit("perf record failed: " + perf.stderr.read())
        cpu0 = e2e.cpu_seconds(pids)
        work, unit, load = run_load(args)
        cpu_s = e2e.cpu_seconds(pids) - cpu0
        perf.send_signal(signal.SIGINT)
        perf_err = perf.communicate(timeout=60)[1]
    finally:
        e2e.stop_all()
    script = subprocess.Popen(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    stats = classify(parse_perf_script(script.stdout), use_caller=not args.no_caller)
    script.wait()
    if not stats["total"]:
        sys.exit("perf recorded no samples: " + perf_err.strip())
    meta = {"proxy": args.proxy, "mode": args.mode, "load": load, "main": main_comm,
            "command": "python3 bench/profile.py " + " ".join(sys.argv[1:]),
            "machine": f"{os.cpu_count()} CPUs, kernel {os.uname().release}"}
    text = report(stats, cpu_s, work, unit, meta)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.proxy}-{args.mode}.md")
    with open(path, "w") as f:
        f.write(text)
    print(f"written to {path}" + (f"; perf data in {data}" if args.keep else ""))


if __name__ == "__main__":
    main()
