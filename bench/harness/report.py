"""The table bench/run prints, and what it says about the machine and the configuration."""

import os
import platform
import subprocess
import urllib.parse

# Every way the benchmark configuration differs from Latchkey's defaults.
CONFIG_DIFFERENCES = [
    "log.level = \"warn\" (default \"info\"): no per-request info logs",
    "login.max_failures_per_ip and login.max_failures_per_account = 1000000 (defaults 50 and 5): "
    "all load comes from one address and one bench user, and a sign-in attempt counts against both "
    "limits while it is in flight (it is given back when it succeeds); the driver only sends valid "
    "credentials",
    "server.limits.max_connections and max_connections_per_ip = 100000 (defaults 1024 and 64), "
    "sessions.max_authorization_requests_per_ip = 1000000 (default 100): all load comes from one "
    "address",
    "secrets.master_key set by environment (SQLite default: a latchkey.master-key file; "
    "PostgreSQL requires it anyway)",
    "server.port = a free port (default 8080); server.public_url unset (http://localhost:PORT)",
    "forward-auth scenarios only: a server of their own with server.public_url = http://auth.bench.test:PORT, "
    "server.trusted_proxies = [127.0.0.1/32], forward_auth.cookie_domain = bench.test and three rules (a bypass, "
    "a deny, then a role rule that decides); the bench user signs in once through /forward-auth/start",
    "tokens.access_token_alg = ES256, EdDSA or RS256 per scenario (default RS256); every scenario "
    "but the EdDSA and RS256 client-credentials ones runs on the ES256 server",
    "database.url = sqlite in a fresh temporary directory, or postgres://.../latchkey_bench "
    "(a freshly created database)",
    "durability unchanged: SQLite in WAL mode with synchronous=NORMAL (Latchkey's built-in setting); "
    "PostgreSQL with the server's own settings (see durability below: synchronous_commit=on and "
    "fsync=on on a stock install)",
    "unchanged: Argon2id at the default cost (19 MiB, 2 iterations, 1 lane; "
    "passwords.max_concurrent_hashes = number of CPUs), database.max_connections 10, "
    "keys (RSA 2048, P-256, Ed25519), token lifetimes, throttles other than the one above, "
    "everything else",
    "clients (seeded by the CLI): a confidential client_credentials client (client_secret_basic); "
    "a confidential first-party web client (authorization_code + refresh_token, ES256 ID tokens, "
    "client_secret_basic, PKCE S256)",
]


def machine():
    model, mem = "", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    version = (out.stdout or out.stderr).splitlines()
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory": mem, "kernel": platform.release(),
            "wrk": version[0] if version else ""}


# `openssl speed -mr` result lines: +F2 RSA, +F4 ECDSA, +F6 EdDSA, each ending in sign/s:verify/s.
SIGNATURE_LINES = {"+F2:": "rsa2048", "+F4:": "ecdsa_p256", "+F6:": "ed25519"}


def signature_speed(seconds=2):
    """Signatures and verifications per second on all cores (`openssl speed`, one process per
    core), so runs on different hosts can be compared with what their cores can sign. None
    when openssl is missing or says nothing usable."""
    cores = os.cpu_count() or 1
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-multi", str(cores), "-mr",
                              "rsa2048", "ecdsap256", "ed25519"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rates = {}
    for line in out.stdout.splitlines():
        for prefix, name in SIGNATURE_LINES.items():
            if line.startswith(prefix):
                fields = line.split(":")
                try:
                    rates[name] = {"sign": float(fields[-2]), "verify": float(fields[-1])}
                except (ValueError, IndexError):
                    pass
    if len(rates) != len(SIGNATURE_LINES):
        return None
    return {"tool": "openssl speed", "cores": cores, "seconds": seconds, **rates}


def signature_line(speed):
    if not speed:
        return "Signature speed of this machine: not measured (openssl speed unavailable)."
    return (f"Signature speed of this machine, all {speed['cores']} cores ({speed['tool']}, before the run): "
            f"RSA-2048 sign {speed['rsa2048']['sign']:,.0f}/s; P-256 sign {speed['ecdsa_p256']['sign']:,.0f}/s, "
            f"verify {speed['ecdsa_p256']['verify']:,.0f}/s; Ed25519 sign {speed['ed25519']['sign']:,.0f}/s, "
            f"verify {speed['ed25519']['verify']:,.0f}/s.")


def durability(backends, pg_url):
    found = {}
    if "sqlite" in backends:
        found["sqlite"] = "journal_mode=WAL, synchronous=NORMAL (set by latchkey-store)"
    if "postgres" in backends:
        parsed = urllib.parse.urlsplit(pg_url)
        url = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
        settings = []
        for name in ("server_version", "synchronous_commit", "fsync", "full_page_writes", "shared_buffers"):
            out = subprocess.run(["psql", url, "-tAc", f"SHOW {name}"], capture_output=True, text=True)
            settings.append(f"{name}={out.stdout.strip() or '?'}")
        found["postgres"] = ", ".join(settings)
    return found


# Above this many cores busy with other processes, a scenario's row is marked.
OTHER_LOAD_NOTE = 0.25


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(results, extras, argon2, info, settings, durable):
    pct = round(settings["fixed_fraction"] * 100)
    lines = [
        f"Latchkey benchmark: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory']}, "
        f"kernel {info['kernel']}; {settings['connections']} connections, {settings['threads']} load threads, "
        f"{settings['seconds']:g} s per run after {settings['warmup']:g} s warm-up; load generator on the "
        "same machine; build profile " + settings["profile"],
        f"requests/s: closed loop at saturation (wrk, or latchkey-bench for flows). p50/p99: open loop at the "
        f"fixed rate shown, {pct} % of saturation (latchkey-bench; a request whose connection was behind "
        "schedule is timed from its intended send time, so queueing is not hidden). CPU and errors: the saturation run; errors add both runs. Peak RSS: the server "
        "process's high-water mark since it started.",
        signature_line(info.get("signatures_per_second")),
        "",
        "| scenario | backend | requests/s | p50 ms | p99 ms | at fixed rate/s | errors | server CPU µs/req "
        "| server peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    noisy = False
    for r in results:
        mark = ""
        if (r.get("other_load_cores") or 0) > OTHER_LOAD_NOTE:
            mark, noisy = " †", True
        lines.append(
            f"| {r['scenario']}{mark} | {r['backend']} | {r['rps']:,.0f} | {fmt(r['p50_ms'], '.2f')} | "
            f"{fmt(r['p99_ms'], '.2f')} | {fmt(r['fixed_rate'], ',.0f')} | {r['errors']} | "
            f"{fmt(r['server_cpu_us_per_op'], ',.0f')} | {fmt(r['server_peak_rss_mib'], '.1f')} |"
        )
    for backend, a in argon2.items():
        lines.append(f"| raw Argon2id verify, no HTTP ({a['threads']} threads, {a['memory_kib']} KiB, "
                     f"t={a['iterations']}, p={a['parallelism']}), just before sign-in | {backend} | "
                     f"{a['rate']:,.1f} | | | | | | |")
        for r in results:
            if r["key"] == "login" and r["backend"] == backend and a["rate"]:
                by_cpu = ""
                if a.get("cpu_us_per_verify") and r.get("server_cpu_us_per_op"):
                    by_cpu = (f"; by CPU cost {100 * a['cpu_us_per_verify'] / r['server_cpu_us_per_op']:.0f} % "
                              f"({a['cpu_us_per_verify']:,.0f} µs per raw verify)")
                lines.append(f"| password sign-in / raw Argon2id | {backend} | by rate "
                             f"{100 * r['rps'] / a['rate']:.0f} %{by_cpu} | | | | | | |")
    for backend, e in extras.items():
        samples = ", ".join(f"{t:.0f}" for t in e["startup_ms_samples"])
        lines.append(f"| start to ready, existing data (median of {len(e['startup_ms_samples'])}: {samples} ms) "
                     f"| {backend} | {e['startup_ms_median']:.0f} ms | | | | | | |")
        lines.append(f"| idle RSS (2 s after start) | {backend} | {fmt(e['idle_rss_mib'], '.1f')} MiB | | | | | | |")
        m = e.get("forward_auth_memory")
        if m:
            lines.append(f"| RSS after forward-auth with {m['sessions']:,} live sessions and {m['keys']:,} API keys, "
                         f"each presented (requests {' + '.join(f'{r:,}' for r in m['requests'])}) | {backend} "
                         f"| {fmt(m['rss_mib'], '.1f')} MiB (peak {fmt(m['peak_rss_mib'], '.1f')}) | | | | "
                         f"{m['errors']} | | |")
    if noisy:
        lines += ["", f"† other processes kept more than {OTHER_LOAD_NOTE} of a core busy during this scenario "
                      "(other_load_cores in the JSON); its numbers understate Latchkey."]
    lines += ["", "Configuration differences from the defaults:"] + [f"- {d}" for d in CONFIG_DIFFERENCES]
    lines += ["", "Durability:"] + [f"- {k}: {v}" for k, v in durable.items()]
    return "\n".join(lines)
