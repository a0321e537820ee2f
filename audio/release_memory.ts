/**
 * Gives memory the process no longer uses back to the system. Decoding a track allocates its
 * samples block by block (hundreds of MB for a long track, in a few MB at a time) and frees
 * them; glibc's allocator keeps most of that freed memory mapped, so the process's resident
 * size stayed ~100 MB above what it holds (measured: a 10-minute track decoded to 16-bit
 * samples, 265 MB RSS for 154 MB of live data; `malloc_trim(0)` brought it to 214 MB).
 *
 * Linux with glibc only; elsewhere, or when the library cannot be opened, it does nothing.
 */

let trim: (() => void) | null | undefined;

function trimmer(): (() => void) | null {
  if (trim !== undefined) return trim;
  trim = null;
  if (Deno.build.os !== "linux") return trim;
  try {
    const libc = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    trim = () => void libc.symbols.malloc_trim(0n);
  } catch { /* not glibc (musl has no malloc_trim), or FFI not allowed: nothing to do */ }
  return trim;
}

/** Returns the freed memory of every thread's heap to the system now. */
export function releaseFreedMemory(): void {
  trimmer()?.();
}

const pending: ReturnType<typeof setTimeout>[] = [];

/**
 * After a track came or went: the garbage of a decode, or a dropped track's samples in the audio
 * thread, is freed by the next garbage collections, not at once; trim after a moment and again
 * later. Timers are unref'd: they never keep the process alive.
 */
export function releaseFreedMemorySoon(): void {
  for (const t of pending.splice(0)) clearTimeout(t);
  for (const ms of [2000, 10_000]) {
    const t = setTimeout(releaseFreedMemory, ms);
    Deno.unrefTimer(t);
    pending.push(t);
  }
}
