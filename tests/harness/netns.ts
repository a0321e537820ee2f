/**
 * Network namespaces on a private bridge, one per simulated machine, so host and peers talk
 * over real veth links with real multicast (mDNS) between them. Needs root (CI runs as root).
 * Everything is named with a per-run tag and torn down by `destroy()`.
 */
export interface Lan {
  /** Namespace names, index 0 first. */
  ns: string[];
  /** IPv4 address of namespace i. */
  ip(i: number): string;
  /** Argument prefix that runs a command inside namespace i. */
  exec(i: number): string[];
  destroy(): Promise<void>;
}

async function sh(cmd: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-ec", cmd], stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`"${cmd}" failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

export async function createLan(hosts: number): Promise<Lan> {
  const tag = Math.random().toString(36).slice(2, 7);
  const subnet = 10 + Math.floor(Math.random() * 200);
  const br = `plb${tag}`;
  const ns = Array.from({ length: hosts }, (_, i) => `pl${tag}${i}`);
  const lan: Lan = {
    ns,
    ip: (i) => `10.213.${subnet}.${i + 1}`,
    exec: (i) => ["ip", "netns", "exec", ns[i]],
    async destroy() {
      for (const n of [...ns, br]) await sh(`ip netns del ${n} 2>/dev/null || true`);
    },
  };
  try {
    await sh(
      `ip netns add ${br} && ip -n ${br} link add br0 type bridge && ip -n ${br} link set br0 up`,
    );
    for (let i = 0; i < hosts; i++) {
      const a = `va${tag}${i}`, b = `vb${tag}${i}`;
      await sh([
        `ip netns add ${ns[i]}`,
        `ip link add ${a} type veth peer name ${b}`,
        `ip link set ${a} netns ${ns[i]}`,
        `ip link set ${b} netns ${br}`,
        `ip -n ${br} link set ${b} master br0 up`,
        `ip -n ${ns[i]} link set lo up`,
        `ip -n ${ns[i]} addr add ${lan.ip(i)}/24 dev ${a}`,
        `ip -n ${ns[i]} link set ${a} up`,
        `ip -n ${ns[i]} route add 224.0.0.0/4 dev ${a}`,
      ].join(" && "));
    }
  } catch (e) {
    await lan.destroy();
    throw new Error(
      `Cannot create network namespaces (needs root and iproute2): ${(e as Error).message}`,
    );
  }
  return lan;
}
