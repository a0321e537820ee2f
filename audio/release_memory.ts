/**
 * Gives memory the process no longer uses back to the system. Decoding a track allocates its
 * samples block by block (hundreds of MB for a long track, in a few MB at a time) and frees
 * them; glibc's allocator keeps most of that freed memory mapped, so the process's resident
 * size stayed ~100 MB above what it holds (measured: a 10-minute track decoded to 16-bit
 * samples, 265 MB RSS for 154 MB of live data; `malloc_trim(0)` brought it to 214 MB).
 *
 * Linux with glibc only; elsewhere, or when the library cannot be opened, it does nothing.
 */

interface Allocator {
  trim(): void;
  /** mallopt(M_MMAP_THRESHOLD, bytes). */
  mmapAbove(bytes: number): void;
}
let allocator: Allocator | null | undefined;

function glibc(): Allocator | null {
  if (allocator !== undefined) return allocator;
  allocator = null;
  if (Deno.build.os !== "linux") return allocator;
  try {
    const libc = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
      mallopt: { parameters: ["i32", "i32"], result: "i32" },
    });
    allocator = {
      trim: () => void libc.symbols.malloc_trim(0n),
      mmapAbove: (bytes) => void libc.symbols.mallopt(M_MMAP_THRESHOLD, bytes),
    };
  } catch { /* not glibc (musl has no malloc_trim), or FFI not allowed: nothing to do */ }
  return allocator;
}

/** glibc's mallopt parameter number for the mmap threshold. */
const M_MMAP_THRESHOLD = -3;
let apart = false;

/**
 * Makes every allocation of 128 KiB or more a mapping of its own, returned to the system the
 * moment it is freed. glibc raises that threshold by itself to the size of the largest block
 * freed (up to 32 MiB), so after a decode's first few MB-sized buffers every later one came from
 * the heap, and the heap kept ~45 MB that trimming could not give back (a 10-minute track:
 * heap 53 → 10 MB, RSS 167 → 124 MB, in one measurement each). Call once, before decoding.
 */
export function keepLargeBlocksApart(): void {
  if (apart) return;
  apart = true;
  glibc()?.mmapAbove(128 * 1024);
}

/** Returns the freed memory of every thread's heap to the system now. */
export function releaseFreedMemory(): void {
  glibc()?.trim();
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
