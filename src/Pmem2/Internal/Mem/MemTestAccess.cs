namespace Pmem2.Internal.Mem;

/// <summary>
/// Pointer-free entry points for tests and benchmarks (only src/Pmem2 may use unsafe code):
/// run the dispatcher with a chosen engine, threshold and flush kind over addresses given as nint.
/// The flush kind is the recording flusher <see cref="MemTrace.RecordFlush"/>, which records
/// ranges only while a <see cref="MemTrace"/> recording is active on the calling thread.
/// </summary>
internal static unsafe class MemTestAccess
{
    /// <summary>The AVX-512F engine's loops over <see cref="Avx512ModelOps"/>: runs on every x86-64 CPU
    /// (test-only, never selected at run time).</summary>
    public static MemEngine Avx512FModel { get; } =
        new SimdEngine<Avx512ModelOps>("avx512f-model", System.Runtime.Intrinsics.X86.Sse2.X64.IsSupported, wcBarrier: false);

    /// <summary>Every engine, supported or not, in both WC-workaround variants where it has one, plus
    /// the AVX-512F model.</summary>
    public static IReadOnlyList<MemEngine> AllEngines { get; } =
    [
        MemEngine.Avx512F(),
        Avx512FModel,
        MemEngine.Avx(wcBarrier: false),
        MemEngine.Avx(wcBarrier: true),
        MemEngine.Sse2(wcBarrier: false),
        MemEngine.Sse2(wcBarrier: true),
        MemEngine.Generic,
        MemEngine.Libc,
    ];

    /// <summary>The engine whose <see cref="MemEngine.ToString"/> is <paramref name="id"/> (e.g. "avx+wc").</summary>
    public static MemEngine Find(string id) => AllEngines.First(e => e.ToString() == id);

    public static void Memmove(MemEngine engine, nuint threshold, nint dst, nint src, nuint len, Pmem2MemFlags flags, bool eadr, bool fenceAfterNonTemporal)
    {
        var flusher = new MemFlusher(&MemTrace.RecordFlush, fenceAfterNonTemporal);
        MemOps.Memmove(engine, threshold, (byte*)dst, (byte*)src, len, flags, eadr, flusher);
    }

    public static void Memset(MemEngine engine, nuint threshold, nint dst, byte value, nuint len, Pmem2MemFlags flags, bool eadr, bool fenceAfterNonTemporal)
    {
        var flusher = new MemFlusher(&MemTrace.RecordFlush, fenceAfterNonTemporal);
        MemOps.Memset(engine, threshold, (byte*)dst, value, len, flags, eadr, flusher);
    }

    /// <summary>The start-up engine through the public contract entry point (MemmoveNodrain).</summary>
    public static void MemmoveNodrain(nint dst, nint src, nuint len, Pmem2MemFlags flags, bool eadr, bool fenceAfterNonTemporal)
    {
        var flusher = new MemFlusher(&MemTrace.RecordFlush, fenceAfterNonTemporal);
        MemOps.MemmoveNodrain((byte*)dst, (byte*)src, len, flags, eadr, flusher);
    }

    /// <summary>The start-up engine through the public contract entry point (MemsetNodrain).</summary>
    public static void MemsetNodrain(nint dst, byte value, nuint len, Pmem2MemFlags flags, bool eadr, bool fenceAfterNonTemporal)
    {
        var flusher = new MemFlusher(&MemTrace.RecordFlush, fenceAfterNonTemporal);
        MemOps.MemsetNodrain((byte*)dst, value, len, flags, eadr, flusher);
    }
}
