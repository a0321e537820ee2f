/**
 * A throwaway certificate for tests that serve HTTPS: a test CA, and a server certificate it
 * signs for `localhost` and 127.0.0.1 (and one more IP address when asked), made with the
 * `openssl` command in a temporary folder. Clients trust `ca` (e.g.
 * `Deno.createHttpClient({ caCerts: [ca] })`), so the chain and the names are really checked.
 * Without `openssl` it fails loudly, as every harness here does for a missing part.
 */

export interface TestCert {
  /** The server's certificate (PEM). */
  cert: string;
  /** Its private key (PEM). */
  key: string;
  /** The CA certificate that signed it (PEM): what a client trusts. */
  ca: string;
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Deletes the folder. */
  remove(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        "openssl is not installed: the TLS tests make their certificate with it " +
          "(Debian/Ubuntu: apt-get install openssl).",
      );
    }
    throw e;
  }
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-4).join("\n");
    throw new Error(`openssl ${args[0]} failed: ${why}`);
  }
}

/** Makes a CA and a server certificate valid for two days; `remove()` when done. */
export async function makeTestCert(opts: { extraIp?: string } = {}): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-tls-" });
  try {
    const sans = ["DNS:localhost", "IP:127.0.0.1", ...(opts.extraIp ? [`IP:${opts.extraIp}`] : [])];
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl(
      ["req", "-x509", ...ec, "-days", "2", "-subj", "/CN=PhaseLock test CA"]
        .concat(["-keyout", "ca.key", "-out", "ca.pem"]),
      dir,
    );
    await openssl(
      ["req", ...ec, "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr"],
      dir,
    );
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      [
        `subjectAltName=${sans.join(",")}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
      ].join("\n") + "\n",
    );
    await openssl(
      ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
        .concat(["-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "cert.pem"]),
      dir,
    );
    const [cert, key, ca] = await Promise.all(
      ["cert.pem", "key.pem", "ca.pem"].map((f) => Deno.readTextFile(`${dir}/${f}`)),
    );
    return {
      cert,
      key,
      ca,
      dir,
      certFile: `${dir}/cert.pem`,
      keyFile: `${dir}/key.pem`,
      caFile: `${dir}/ca.pem`,
      remove: () => Deno.remove(dir, { recursive: true }),
    };
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
